package shopify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

func objects() []sdk.Object {
	ro := func(name, typ, desc string) sdk.Field {
		return sdk.Field{Name: name, Type: typ, ReadOnly: true, Description: desc}
	}
	rw := func(name, typ, desc string) sdk.Field { return sdk.Field{Name: name, Type: typ, Description: desc} }
	return []sdk.Object{
		{
			Name: "customers", Description: "Customers of the shop", IDField: "id", UpsertKey: "email",
			Readable: true, Writable: true, Incremental: true,
			Fields: []sdk.Field{
				ro("id", sdk.TypeString, "Global id (gid://shopify/Customer/...)"),
				rw("email", sdk.TypeString, "Email address; the natural key when writing without id"),
				rw("first_name", sdk.TypeString, ""),
				rw("last_name", sdk.TypeString, ""),
				rw("phone", sdk.TypeString, "E.164 phone number"),
				rw("tags", sdk.TypeArray, "Tags (strings)"),
				rw("note", sdk.TypeString, ""),
				ro("created_at", sdk.TypeDateTime, ""),
				ro("updated_at", sdk.TypeDateTime, ""),
			},
		},
		{
			Name: "orders", Description: "Orders; only note and tags are writable", IDField: "id",
			Readable: true, Writable: true, Incremental: true,
			Fields: []sdk.Field{
				ro("id", sdk.TypeString, "Global id (gid://shopify/Order/...)"),
				ro("name", sdk.TypeString, "Order name, e.g. #1001"),
				ro("email", sdk.TypeString, ""),
				ro("total_price", sdk.TypeString, "Total in the shop currency (decimal string)"),
				ro("currency", sdk.TypeString, "ISO 4217 code"),
				ro("financial_status", sdk.TypeString, "PAID, PENDING, REFUNDED..."),
				ro("customer_name", sdk.TypeString, "Display name of the order's customer"),
				ro("line_items", sdk.TypeArray, "Every line of the order: {name, quantity, price}"),
				rw("note", sdk.TypeString, "The merchant's note"),
				rw(ExternalIDField, sdk.TypeString, "The id of the order in the app a Synchron workflow writes it to (such as its Sage invoice), kept in the order metafield synchron.external_id: use it as write_back.field to leave the note to the merchant"),
				rw("tags", sdk.TypeArray, "Tags (strings)"),
				ro("created_at", sdk.TypeDateTime, ""),
				ro("updated_at", sdk.TypeDateTime, ""),
			},
		},
		{
			Name: "products", Description: "Products (read only)", IDField: "id",
			Readable: true, Incremental: true,
			Fields: []sdk.Field{
				ro("id", sdk.TypeString, "Global id (gid://shopify/Product/...)"),
				ro("title", sdk.TypeString, ""),
				ro("handle", sdk.TypeString, ""),
				ro("vendor", sdk.TypeString, ""),
				ro("product_type", sdk.TypeString, ""),
				ro("status", sdk.TypeString, "ACTIVE, ARCHIVED or DRAFT"),
				ro("tags", sdk.TypeArray, "Tags (strings)"),
				ro("created_at", sdk.TypeDateTime, ""),
				ro("updated_at", sdk.TypeDateTime, ""),
			},
		},
	}
}

// Node selections and their cost per node (Shopify: 1 per object, a
// connection 2 + first times its node).
const (
	customerFields = `id email firstName lastName phone tags note createdAt updatedAt`
	lineFields     = `nodes { name quantity originalUnitPriceSet { shopMoney { amount } } } pageInfo { hasNextPage endCursor }`
	orderFields    = `id name email note tags currencyCode displayFinancialStatus createdAt updatedAt totalPriceSet { shopMoney { amount } } customer { displayName } ` +
		`externalId: metafield(namespace: "` + metafieldNamespace + `", key: "` + metafieldKey + `") { value } lineItems(first: ` + firstLines + `) { ` + lineFields + ` }`
	// firstLines are the lines read with the order; the others are paged
	// in by moreLines.
	firstLines    = "10"
	moreLines     = 100
	productFields = `id title handle vendor productType status tags createdAt updatedAt`
)

type readSpec struct {
	selection string
	perNode   float64
	convert   func(json.RawMessage) (map[string]any, error)
}

func readSpecFor(object string) (readSpec, bool) {
	switch object {
	case "customers":
		return readSpec{customerFields, 1, convertCustomer}, true
	case "orders":
		// order 1 + totalPriceSet 2 + customer 1 + metafield 1 + pageInfo 1
		// + lineItems (2 + 10 × (1 + originalUnitPriceSet 2))
		return readSpec{orderFields, 38, convertOrder}, true
	case "products":
		return readSpec{productFields, 1, convertProduct}, true
	}
	return readSpec{}, false
}

// checkpoint resumes a read. Shopify's updated_at has one-second
// precision, so a record can change again within the second of the last
// record read (a lower id edited later in that second, or the same record
// edited twice): the query re-reads from that second (updated_at:>=) and a
// record of that second is skipped only if it was emitted with the same
// content. Seen holds the records emitted at UpdatedAt: numeric id -> hash of
// their converted fields. It is bounded (maxBoundary): past it, records of
// that second are read again by the next read (repeated, never lost).
//
// Checkpoints of earlier versions ({updated_at, id}) decode with an empty
// Seen: the next read emits that second again. ID is never written: an
// older connector given this checkpoint (a rollback) then re-reads the whole
// second instead of skipping up to an id.
type checkpoint struct {
	UpdatedAt time.Time         `json:"updated_at"`
	ID        string            `json:"id,omitempty"`
	Seen      map[string]string `json:"seen,omitempty"`
}

// maxBoundary bounds the records a checkpoint remembers for its second
// (about 50 bytes each).
const maxBoundary = 1000

// skip reports whether a record read at updated with that content hash was
// already emitted before the checkpoint.
func (cp *checkpoint) skip(id string, updated time.Time, hash string) bool {
	if cp == nil {
		return false
	}
	if updated.Before(cp.UpdatedAt) {
		return true
	}
	return updated.Equal(cp.UpdatedAt) && cp.Seen[boundaryKey(id)] == hash
}

// emitted moves the checkpoint past a record emitted at updated.
func (cp *checkpoint) emitted(id string, updated time.Time, hash string) *checkpoint {
	if cp == nil || updated.After(cp.UpdatedAt) {
		return &checkpoint{UpdatedAt: updated, Seen: map[string]string{boundaryKey(id): hash}}
	}
	// updated equals cp.UpdatedAt (the query reads nothing older).
	k := boundaryKey(id)
	if _, ok := cp.Seen[k]; !ok && len(cp.Seen) >= maxBoundary {
		return cp // full: this record will be read again
	}
	if cp.Seen == nil {
		cp.Seen = map[string]string{}
	}
	cp.Seen[k] = hash
	return cp
}

// boundaryKey is the numeric part of a gid (the object is implied).
func boundaryKey(gid string) string { return gid[strings.LastIndex(gid, "/")+1:] }

// contentHash identifies a record's converted fields (json.Marshal sorts map
// keys, so equal content hashes equally).
func contentHash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// DefaultBatchSize is the page size when the host asks for none.
const DefaultBatchSize = 100

// Read pages through the object sorted by UPDATED_AT.
func (c *Connector) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	cfg, diags := parseConfig(req.Config)
	if diags.HasError() {
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: diags})
	}
	spec, ok := readSpecFor(req.Object)
	if !ok {
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{sdk.Errorf("", "unknown object "+strconv.Quote(req.Object), "objects: customers, orders, products")}})
	}
	var cp *checkpoint
	if len(req.Cursor) > 0 {
		cp = &checkpoint{}
		if err := json.Unmarshal(req.Cursor, cp); err != nil {
			return fmt.Errorf("decode checkpoint: %w", err)
		}
		cp.ID = "" // an old checkpoint: its second is read again
	}
	first := req.BatchSize
	if first <= 0 {
		first = DefaultBatchSize
	}
	want := first
	// pageSize keeps a page within 250 nodes and a query within half of
	// 1000 points or of the shop's bucket, as last reported: a query must
	// find its whole requested cost in the bucket before it runs, and a
	// page asking for the whole bucket would wait for it to refill (up to
	// 20 s on a 50/s shop) even though reading costs much less (the
	// requested cost counts 10 lines per order, most orders have fewer).
	pageSize := func() int {
		budget := math.Min(defaultMaximum, c.bucket(cfg.Shop).maximum()) / 2
		return max(1, min(want, 250, int(math.Floor((budget-2)/spec.perNode))))
	}
	doc := fmt.Sprintf(`query Read($first: Int!, $after: String, $query: String) { %s(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) { nodes { %s } pageInfo { hasNextPage endCursor } } }`, req.Object, spec.selection)
	vars := map[string]any{}
	if cp != nil {
		vars["query"] = fmt.Sprintf("updated_at:>='%s'", cp.UpdatedAt.UTC().Format(time.RFC3339))
	}
	for {
		var out map[string]struct {
			Nodes    []json.RawMessage `json:"nodes"`
			PageInfo struct {
				HasNextPage bool   `json:"hasNextPage"`
				EndCursor   string `json:"endCursor"`
			} `json:"pageInfo"`
		}
		first = pageSize()
		vars["first"] = first
		err := c.call(ctx, cfg, doc, vars, 2+float64(first)*spec.perNode, &out)
		if errors.Is(err, errTooCostly) && pageSize() < first {
			continue // the bucket is smaller than assumed: ask a smaller page
		}
		if err != nil {
			return readFailure(ctx, sink, cfg, err, fmt.Sprintf("read %s of %s", req.Object, cfg.Shop))
		}
		page := out[req.Object]
		var batch sdk.ReadBatch
		for _, n := range page.Nodes {
			fields, err := spec.convert(n)
			if err != nil {
				return fmt.Errorf("read %s of %s: %w", req.Object, cfg.Shop, err)
			}
			id, _ := fields["id"].(string)
			if after, ok := fields[moreLinesKey].(string); ok {
				delete(fields, moreLinesKey)
				lines, err := c.moreLines(ctx, cfg, id, after)
				if err != nil {
					return readFailure(ctx, sink, cfg, err, fmt.Sprintf("read the lines of order %s of %s", id, cfg.Shop))
				}
				fields["line_items"] = append(fields["line_items"].([]map[string]any), lines...)
			}
			updated, err := time.Parse(time.RFC3339, fmt.Sprint(fields["updated_at"]))
			if err != nil {
				return fmt.Errorf("read %s of %s: record %s: updated_at: %w", req.Object, cfg.Shop, id, err)
			}
			raw, err := json.Marshal(fields)
			if err != nil {
				return fmt.Errorf("encode record %s: %w", id, err)
			}
			hash := contentHash(raw)
			if cp.skip(id, updated, hash) {
				continue // emitted before the checkpoint, unchanged
			}
			batch.Records = append(batch.Records, sdk.Record{ID: id, UpdatedAt: updated, Fields: raw})
			cp = cp.emitted(id, updated, hash)
		}
		if len(batch.Records) > 0 {
			next, err := json.Marshal(cp)
			if err != nil {
				return fmt.Errorf("encode checkpoint: %w", err)
			}
			batch.Checkpoint = next
			if err := sink.Emit(ctx, batch); err != nil {
				return err
			}
		}
		if !page.PageInfo.HasNextPage {
			return nil
		}
		vars["after"] = page.PageInfo.EndCursor
	}
}

// readFailure ends a read on a failed call: a config at fault (refused
// token, unknown shop or version) is a diagnostic on its attribute; anything
// else is the error, an sdk.Retryable one when Shopify kept failing (5xx,
// network) so that the host resumes the run from its checkpoint later.
func readFailure(ctx context.Context, sink sdk.ReadSink, cfg Config, err error, what string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	if _, retry := sdk.IsRetryable(err); !retry {
		if d := callDiagnostic(cfg, err); d.Attribute != "" {
			return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{d}})
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

type money struct {
	ShopMoney struct {
		Amount string `json:"amount"`
	} `json:"shopMoney"`
}

func nonNilTags(t []string) []string {
	if t == nil {
		return []string{}
	}
	return t
}

func convertCustomer(raw json.RawMessage) (map[string]any, error) {
	var n struct {
		ID                   string   `json:"id"`
		Email                *string  `json:"email"`
		FirstName            *string  `json:"firstName"`
		LastName             *string  `json:"lastName"`
		Phone                *string  `json:"phone"`
		Note                 *string  `json:"note"`
		Tags                 []string `json:"tags"`
		CreatedAt, UpdatedAt string
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("decode customer: %w", err)
	}
	return map[string]any{
		"id": n.ID, "email": n.Email, "first_name": n.FirstName, "last_name": n.LastName,
		"phone": n.Phone, "note": n.Note, "tags": nonNilTags(n.Tags),
		"created_at": n.CreatedAt, "updated_at": n.UpdatedAt,
	}, nil
}

// moreLinesKey marks a converted order whose lines go on after its first
// page (the value is the cursor to page from).
const moreLinesKey = "\x00more_lines"

type linesPage struct {
	Nodes []struct {
		Name                 string `json:"name"`
		Quantity             int    `json:"quantity"`
		OriginalUnitPriceSet money  `json:"originalUnitPriceSet"`
	} `json:"nodes"`
	PageInfo struct {
		HasNextPage bool   `json:"hasNextPage"`
		EndCursor   string `json:"endCursor"`
	} `json:"pageInfo"`
}

func (p linesPage) lines() []map[string]any {
	out := make([]map[string]any, 0, len(p.Nodes))
	for _, l := range p.Nodes {
		out = append(out, map[string]any{"name": l.Name, "quantity": l.Quantity, "price": l.OriginalUnitPriceSet.ShopMoney.Amount})
	}
	return out
}

// moreLines pages in the lines of an order after its first page.
func (c *Connector) moreLines(ctx context.Context, cfg Config, id, after string) ([]map[string]any, error) {
	doc := `query Lines($id: ID!, $after: String) { order(id: $id) { lineItems(first: ` + strconv.Itoa(moreLines) + `, after: $after) { ` + lineFields + ` } } }`
	var lines []map[string]any
	for {
		var out struct {
			Order *struct {
				LineItems linesPage `json:"lineItems"`
			} `json:"order"`
		}
		// order 1 + lineItems (2 + 100 × 3) + pageInfo 1
		if err := c.call(ctx, cfg, doc, map[string]any{"id": id, "after": after}, 4+moreLines*3, &out); err != nil {
			return nil, err
		}
		if out.Order == nil {
			return lines, nil // deleted meanwhile
		}
		lines = append(lines, out.Order.LineItems.lines()...)
		if !out.Order.LineItems.PageInfo.HasNextPage {
			return lines, nil
		}
		after = out.Order.LineItems.PageInfo.EndCursor
	}
}

func convertOrder(raw json.RawMessage) (map[string]any, error) {
	var n struct {
		ID                     string   `json:"id"`
		Name                   string   `json:"name"`
		Email                  *string  `json:"email"`
		Note                   *string  `json:"note"`
		Tags                   []string `json:"tags"`
		CurrencyCode           string   `json:"currencyCode"`
		DisplayFinancialStatus *string  `json:"displayFinancialStatus"`
		CreatedAt, UpdatedAt   string
		TotalPriceSet          money `json:"totalPriceSet"`
		Customer               *struct {
			DisplayName *string `json:"displayName"`
		} `json:"customer"`
		ExternalID *struct {
			Value *string `json:"value"`
		} `json:"externalId"`
		LineItems linesPage `json:"lineItems"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("decode order: %w", err)
	}
	var customer, external *string
	if n.Customer != nil {
		customer = n.Customer.DisplayName
	}
	if n.ExternalID != nil {
		external = n.ExternalID.Value
	}
	out := map[string]any{
		"id": n.ID, "name": n.Name, "email": n.Email, "note": n.Note, "tags": nonNilTags(n.Tags),
		"currency": n.CurrencyCode, "financial_status": n.DisplayFinancialStatus,
		"total_price": n.TotalPriceSet.ShopMoney.Amount, "line_items": n.LineItems.lines(),
		"customer_name": customer, ExternalIDField: external,
		"created_at": n.CreatedAt, "updated_at": n.UpdatedAt,
	}
	if n.LineItems.PageInfo.HasNextPage {
		out[moreLinesKey] = n.LineItems.PageInfo.EndCursor
	}
	return out, nil
}

func convertProduct(raw json.RawMessage) (map[string]any, error) {
	var n struct {
		ID, Title, Handle, Vendor, ProductType, Status string
		Tags                                           []string `json:"tags"`
		CreatedAt, UpdatedAt                           string
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("decode product: %w", err)
	}
	return map[string]any{
		"id": n.ID, "title": n.Title, "handle": n.Handle, "vendor": n.Vendor, "product_type": n.ProductType,
		"status": n.Status, "tags": nonNilTags(n.Tags), "created_at": n.CreatedAt, "updated_at": n.UpdatedAt,
	}, nil
}
