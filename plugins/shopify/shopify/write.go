package shopify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Mutation cost (Shopify charges 10 points per mutation) and the cost of the
// email lookup (a connection of one node).
const (
	mutationCost = 10
	lookupCost   = 3
)

type userError struct {
	Field   []string `json:"field"`
	Message string   `json:"message"`
}

// Write applies customers (create or update, upserting by email when no id
// is given; batched, several aliased mutations per request within the
// shop's budget) and orders (note and tags, one mutation per record).
func (c *Connector) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	cfg, diags := parseConfig(req.Config)
	resp := &sdk.WriteResponse{Results: make([]sdk.WriteResult, len(req.Records))}
	if diags.HasError() {
		resp.Diagnostics = diags
		for i, r := range req.Records {
			resp.Results[i] = sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRejected, Message: "invalid config: " + diags.Error()}
		}
		return resp, nil
	}
	if req.Object == "customers" {
		// claimed are the customers answered to records of this call: a
		// look for a create marked MayExistSince leaves them out.
		claimed := map[string]bool{}
		for start := 0; start < len(req.Records); {
			n := c.customerChunk(cfg)
			end := min(start+n, len(req.Records))
			results, errs := c.writeCustomers(ctx, cfg, req.Records[start:end], claimed)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if n > 1 && slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, errTooCostly) }) && c.customerChunk(cfg) < n {
				// The shop's bucket is smaller than assumed and the chunk
				// was refused before anything was written: smaller chunks.
				continue
			}
			for j, res := range results {
				if err := errs[j]; err != nil {
					res = failed(cfg, err)
					if (errors.Is(err, errUnauthorized) || errors.Is(err, errNotFound)) && !resp.Diagnostics.HasError() {
						resp.Diagnostics = append(resp.Diagnostics, callDiagnostic(cfg, err))
					}
				}
				res.Ref = req.Records[start+j].Ref
				resp.Results[start+j] = res
				if res.Status == sdk.WriteOK && res.ID != "" {
					claimed[res.ID] = true
				}
			}
			start = end
		}
		return resp, nil
	}
	for i, r := range req.Records {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var res sdk.WriteResult
		var err error
		switch req.Object {
		case "orders":
			res, err = c.writeOrder(ctx, cfg, r)
		default:
			res = sdk.WriteResult{Status: sdk.WriteRejected, Message: "object " + req.Object + " is not writable"}
		}
		if err != nil {
			res = failed(cfg, err)
			if errors.Is(err, errUnauthorized) || errors.Is(err, errNotFound) {
				if !resp.Diagnostics.HasError() {
					resp.Diagnostics = append(resp.Diagnostics, callDiagnostic(cfg, err))
				}
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		res.Ref = r.Ref
		resp.Results[i] = res
	}
	return resp, nil
}

// failed maps a call error to a record's result.
func failed(cfg Config, err error) sdk.WriteResult {
	var qe *queryError
	if errors.As(err, &qe) {
		return sdk.WriteResult{Status: sdk.WriteRejected, Message: qe.Error()}
	}
	if after, ok := sdk.IsRetryable(err); ok {
		return sdk.WriteResult{Status: sdk.WriteRetryable, RetryAfter: after, Message: err.Error()}
	}
	return sdk.WriteResult{Status: sdk.WriteRetryable, Message: callDiagnostic(cfg, err).Summary + ": " + err.Error()}
}

func rejected(format string, args ...any) sdk.WriteResult {
	return sdk.WriteResult{Status: sdk.WriteRejected, Message: fmt.Sprintf(format, args...)}
}

func emailTaken(errs []userError) bool {
	for _, e := range errs {
		if strings.Contains(strings.ToLower(e.Message), "taken") && len(e.Field) > 0 && e.Field[len(e.Field)-1] == "email" {
			return true
		}
	}
	return false
}

func userErrorsMessage(errs []userError) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Message
		if len(e.Field) > 0 {
			parts[i] = strings.Join(e.Field, ".") + ": " + e.Message
		}
	}
	return strings.Join(parts, "; ")
}

type customerFieldsIn struct {
	Email     *string   `json:"email"`
	FirstName *string   `json:"first_name"`
	LastName  *string   `json:"last_name"`
	Phone     *string   `json:"phone"`
	Note      *string   `json:"note"`
	Tags      *[]string `json:"tags"`
	// Read-only fields a host may echo back; ignored.
	ID        any `json:"id"`
	CreatedAt any `json:"created_at"`
	UpdatedAt any `json:"updated_at"`
}

// customerChunk is how many customers one request writes: 25, or fewer so
// that a request costs at most half the shop's bucket.
func (c *Connector) customerChunk(cfg Config) int {
	budget := math.Min(defaultMaximum, c.bucket(cfg.Shop).maximum()) / 2
	return max(1, min(25, int(budget/(mutationCost+lookupCost))))
}

// customerInput converts a record's fields to a CustomerInput (without id).
func customerInput(r sdk.WriteRecord) (map[string]any, *customerFieldsIn, string) {
	if r.Delete {
		return nil, nil, "deleting customers is not supported"
	}
	var in customerFieldsIn
	dec := json.NewDecoder(strings.NewReader(string(r.Fields)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, nil, fmt.Sprintf("invalid customer fields: %v", err)
	}
	input := map[string]any{}
	set := func(k string, v *string) {
		if v != nil {
			input[k] = *v
		}
	}
	set("email", in.Email)
	set("firstName", in.FirstName)
	set("lastName", in.LastName)
	set("phone", in.Phone)
	set("note", in.Note)
	if in.Tags != nil {
		input["tags"] = *in.Tags
	}
	return input, &in, ""
}

// writeCustomers writes a chunk in two requests: one looking up by email
// the customers given without id, one with a mutation per record (aliases).
// A keyless create (no id, no email) marked MayExistSince is first looked
// for, alone (see mayExist). A result with a non-nil error is to be
// replaced by failed(err).
func (c *Connector) writeCustomers(ctx context.Context, cfg Config, recs []sdk.WriteRecord, claimed map[string]bool) ([]sdk.WriteResult, []error) {
	results := make([]sdk.WriteResult, len(recs))
	errs := make([]error, len(recs))
	inputs := make([]map[string]any, len(recs))
	ids := make([]string, len(recs))
	var lookups []int
	for i, r := range recs {
		input, in, msg := customerInput(r)
		if msg != "" {
			results[i] = rejected("%s", msg)
			continue
		}
		hasEmail := in.Email != nil && *in.Email != ""
		// A create with an email needs no look when MayExistSince is set:
		// it upserts by email, finding the customer an earlier attempt
		// made.
		if r.ID == "" && !hasEmail && !r.MayExistSince.IsZero() {
			res, done, err := c.mayExist(ctx, cfg, input, r.MayExistSince, claimed)
			if done {
				results[i], errs[i] = res, err
				continue
			}
		}
		inputs[i], ids[i] = input, r.ID
		if r.ID == "" && hasEmail {
			lookups = append(lookups, i)
		}
	}
	if len(lookups) > 0 {
		var decl, sel []string
		vars := map[string]any{}
		for _, i := range lookups {
			decl = append(decl, fmt.Sprintf("$q%d: String!", i))
			sel = append(sel, fmt.Sprintf("l%d: customers(first: 1, query: $q%d) { nodes { id email } }", i, i))
			vars[fmt.Sprintf("q%d", i)] = emailQuery(inputs[i]["email"].(string))
		}
		doc := "query Lookup(" + strings.Join(decl, ", ") + ") { " + strings.Join(sel, " ") + " }"
		var out map[string]struct {
			Nodes []struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			} `json:"nodes"`
		}
		if err := c.call(ctx, cfg, doc, vars, lookupCost*float64(len(lookups)), &out); err != nil {
			for _, i := range lookups {
				errs[i] = fmt.Errorf("look up customers by email: %w", err)
				inputs[i] = nil
			}
		} else {
			for _, i := range lookups {
				for _, n := range out[fmt.Sprintf("l%d", i)].Nodes {
					if strings.EqualFold(n.Email, inputs[i]["email"].(string)) {
						ids[i] = n.ID
					}
				}
			}
		}
	}
	var decl, sel []string
	vars := map[string]any{}
	// keyless are the creates without email: resent after a lost answer,
	// they would create the customer twice.
	keyless := make([]bool, len(recs))
	anyKeyless := false
	for i, input := range inputs {
		if input == nil {
			continue
		}
		mutation := "customerCreate"
		if email, _ := input["email"].(string); ids[i] == "" && email == "" {
			keyless[i], anyKeyless = true, true
		}
		if ids[i] != "" {
			mutation = "customerUpdate"
			input["id"] = ids[i]
		}
		decl = append(decl, fmt.Sprintf("$i%d: CustomerInput!", i))
		sel = append(sel, fmt.Sprintf("m%d: %s(input: $i%d) { customer { %s } userErrors { field message } }", i, mutation, i, customerFields))
		vars[fmt.Sprintf("i%d", i)] = input
	}
	if len(sel) == 0 {
		return results, errs
	}
	doc := "mutation Write(" + strings.Join(decl, ", ") + ") { " + strings.Join(sel, " ") + " }"
	var out map[string]*struct {
		Customer   json.RawMessage `json:"customer"`
		UserErrors []userError     `json:"userErrors"`
	}
	sent := c.opts.Now()
	err := c.callOnce(ctx, cfg, doc, vars, mutationCost*float64(len(sel)), &out, anyKeyless)
	var lost *unknownOutcomeError
	if errors.As(err, &lost) {
		// Shopify may have applied the request: the keyless creates are
		// looked for, the others (updates, creates by email) are written
		// again one by one (an update is idempotent; a create by email
		// finds the customer by its email).
		for i, input := range inputs {
			switch {
			case input == nil:
			case keyless[i]:
				results[i], errs[i] = c.recoverCreate(ctx, cfg, input, sent, lost)
			default:
				results[i], errs[i] = c.writeCustomer(ctx, cfg, recs[i])
			}
		}
		return results, errs
	}
	if err != nil {
		for i, input := range inputs {
			if input != nil {
				errs[i] = fmt.Errorf("write customers: %w", err)
			}
		}
		return results, errs
	}
	for i, input := range inputs {
		if input == nil {
			continue
		}
		p := out[fmt.Sprintf("m%d", i)]
		switch {
		case p == nil:
			errs[i] = fmt.Errorf("write customers: no answer for record %d", i)
		case ids[i] == "" && emailTaken(p.UserErrors):
			// Created since the lookup (or by an earlier attempt whose
			// answer was lost): the single-record path updates it.
			results[i], errs[i] = c.writeCustomer(ctx, cfg, recs[i])
			if errs[i] == nil && results[i].Status == sdk.WriteOK {
				results[i].Action = sdk.ActionCreated
			}
		case len(p.UserErrors) > 0:
			results[i] = rejected("%s", userErrorsMessage(p.UserErrors))
		default:
			fields, err := convertCustomer(p.Customer)
			if err != nil {
				errs[i] = err
				continue
			}
			raw, _ := json.Marshal(fields)
			action := sdk.ActionUpdated
			if ids[i] == "" {
				action = sdk.ActionCreated
			}
			results[i] = sdk.WriteResult{Status: sdk.WriteOK, Action: action, ID: fmt.Sprint(fields["id"]), Fields: raw}
		}
	}
	return results, errs
}

func emailQuery(email string) string {
	return "email:'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(email) + "'"
}

// writeCustomer writes one customer (one lookup, one mutation).
func (c *Connector) writeCustomer(ctx context.Context, cfg Config, r sdk.WriteRecord) (sdk.WriteResult, error) {
	if r.Delete {
		return rejected("deleting customers is not supported"), nil
	}
	var in customerFieldsIn
	dec := json.NewDecoder(strings.NewReader(string(r.Fields)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return rejected("invalid customer fields: %v", err), nil
	}
	input := map[string]any{}
	set := func(k string, v *string) {
		if v != nil {
			input[k] = *v
		}
	}
	set("email", in.Email)
	set("firstName", in.FirstName)
	set("lastName", in.LastName)
	set("phone", in.Phone)
	set("note", in.Note)
	if in.Tags != nil {
		input["tags"] = *in.Tags
	}
	id := r.ID
	if id == "" && in.Email != nil && *in.Email != "" {
		found, err := c.customerByEmail(ctx, cfg, *in.Email)
		if err != nil {
			return sdk.WriteResult{}, err
		}
		id = found
	}
	mutation, action := "customerCreate", sdk.ActionCreated
	if id != "" {
		mutation, action = "customerUpdate", sdk.ActionUpdated
		input["id"] = id
	}
	doc := fmt.Sprintf(`mutation Write($input: CustomerInput!) { %s(input: $input) { customer { %s } userErrors { field message } } }`, mutation, customerFields)
	var out map[string]struct {
		Customer   json.RawMessage `json:"customer"`
		UserErrors []userError     `json:"userErrors"`
	}
	keyless := mutation == "customerCreate" && (in.Email == nil || *in.Email == "")
	sent := c.opts.Now()
	if err := c.callOnce(ctx, cfg, doc, map[string]any{"input": input}, mutationCost, &out, keyless); err != nil {
		var lost *unknownOutcomeError
		if errors.As(err, &lost) {
			return c.recoverCreate(ctx, cfg, input, sent, lost)
		}
		return sdk.WriteResult{}, fmt.Errorf("%s: %w", mutation, err)
	}
	p := out[mutation]
	if mutation == "customerCreate" && emailTaken(p.UserErrors) {
		// The customer appeared since the lookup (or an earlier attempt
		// whose answer was lost created it): update it instead.
		found, err := c.customerByEmail(ctx, cfg, *in.Email)
		if err != nil {
			return sdk.WriteResult{}, err
		}
		if found != "" {
			r.ID = found
			res, err := c.writeCustomer(ctx, cfg, r)
			if err == nil && res.Status == sdk.WriteOK {
				res.Action = sdk.ActionCreated
			}
			return res, err
		}
	}
	if len(p.UserErrors) > 0 {
		return rejected("%s", userErrorsMessage(p.UserErrors)), nil
	}
	fields, err := convertCustomer(p.Customer)
	if err != nil {
		return sdk.WriteResult{}, err
	}
	raw, _ := json.Marshal(fields)
	return sdk.WriteResult{Status: sdk.WriteOK, Action: action, ID: fmt.Sprint(fields["id"]), Fields: raw}, nil
}

// recoverWindow is how long before a lost customerCreate was sent the
// customer it created may say it was created (clocks differ).
const recoverWindow = 2 * time.Minute

// recoverCreate answers a customerCreate without email whose answer was
// lost (Shopify may have applied it): it looks for the customer it may have
// created (findCreated, since shortly before the create was sent). Exactly
// one: that is the record's customer. None or several: the record is
// retryable (the host writes it again later; Shopify's search may lag a few
// seconds behind a create).
func (c *Connector) recoverCreate(ctx context.Context, cfg Config, input map[string]any, sent time.Time, lost *unknownOutcomeError) (sdk.WriteResult, error) {
	found, err := c.findCreated(ctx, cfg, input, sent.Add(-recoverWindow).UTC(), nil)
	if err != nil {
		return sdk.WriteResult{}, fmt.Errorf("customerCreate: %v; then looking for the customer it may have created: %w", lost, err)
	}
	if len(found) != 1 {
		return sdk.WriteResult{Status: sdk.WriteRetryable, RetryAfter: backoff(maxFailures),
			Message: fmt.Sprintf("customerCreate without email: %v, and %d customers created since match what was sent: retry later", lost, len(found))}, nil
	}
	return createdResult(found[0]), nil
}

// mayExist looks for the customer a keyless create marked MayExistSince
// (the host sent it earlier and lost its outcome) may have made: the
// customers created since that time (less recoverWindow), found as by
// recoverCreate, those in claimed left out. done is false when none
// matches: the record is to be created as usual. One match answers the
// record created with it (and claims it); several reject it naming them;
// a failed look is an error (retryable; the record is not sent).
func (c *Connector) mayExist(ctx context.Context, cfg Config, input map[string]any, since time.Time, claimed map[string]bool) (sdk.WriteResult, bool, error) {
	found, err := c.findCreated(ctx, cfg, input, since.Add(-recoverWindow).UTC(), claimed)
	if err != nil {
		return sdk.WriteResult{}, true, fmt.Errorf("customerCreate without email: an earlier attempt had an unknown outcome and looking for the customer it may have created failed (not sent; the next attempt looks again): %w", err)
	}
	switch len(found) {
	case 0:
		return sdk.WriteResult{}, false, nil
	case 1:
		res := createdResult(found[0])
		claimed[res.ID] = true
		return res, true, nil
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = fmt.Sprint(f["id"])
	}
	return rejected("customerCreate without email: an earlier attempt had an unknown outcome and %d customers like it were created since (%s): not created again; check them in Shopify",
		len(found), strings.Join(ids, ", ")), true, nil
}

func createdResult(fields map[string]any) sdk.WriteResult {
	raw, _ := json.Marshal(fields)
	return sdk.WriteResult{Status: sdk.WriteOK, Action: sdk.ActionCreated, ID: fmt.Sprint(fields["id"]), Fields: raw}
}

// findCreated returns the customers created since since that a
// customerCreate of input (without email) may have made: by phone when one
// was sent (Shopify keeps phones unique), else among the customers updated
// since then, those with every field sent. It pages through them all; ids
// in skip are left out.
func (c *Connector) findCreated(ctx context.Context, cfg Config, input map[string]any, since time.Time, skip map[string]bool) ([]map[string]any, error) {
	q := "updated_at:>='" + since.Format(time.RFC3339) + "'"
	phone, _ := input["phone"].(string)
	if phone != "" {
		q = "phone:'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(phone) + "' " + q
	}
	doc := `query Recover($query: String!, $after: String) { customers(first: 25, after: $after, query: $query, sortKey: UPDATED_AT, reverse: true) { nodes { ` + customerFields + ` } pageInfo { hasNextPage endCursor } } }`
	var found []map[string]any
	var after *string
	for {
		var out struct {
			Customers struct {
				Nodes    []json.RawMessage `json:"nodes"`
				PageInfo struct {
					HasNextPage bool   `json:"hasNextPage"`
					EndCursor   string `json:"endCursor"`
				} `json:"pageInfo"`
			} `json:"customers"`
		}
		if err := c.call(ctx, cfg, doc, map[string]any{"query": q, "after": after}, 28, &out); err != nil {
			return nil, err
		}
		for _, raw := range out.Customers.Nodes {
			fields, err := convertCustomer(raw)
			if err != nil {
				return nil, err
			}
			if skip[fmt.Sprint(fields["id"])] {
				continue
			}
			if created, err := time.Parse(time.RFC3339, fmt.Sprint(fields["created_at"])); err != nil || created.Before(since) {
				continue
			}
			if phone == "" && !sameCustomer(fields, input) {
				continue
			}
			found = append(found, fields)
		}
		next := out.Customers.PageInfo.EndCursor
		if !out.Customers.PageInfo.HasNextPage || next == "" {
			return found, nil
		}
		after = &next
	}
}

// sameCustomer reports whether a customer read holds every field of a
// CustomerInput sent.
func sameCustomer(fields, input map[string]any) bool {
	for k, v := range input {
		var got any
		switch k {
		case "firstName":
			got = fields["first_name"]
		case "lastName":
			got = fields["last_name"]
		case "email", "phone", "note":
			got = fields[k]
		case "tags":
			want, _ := v.([]string)
			have, _ := fields["tags"].([]string)
			want, have = slices.Clone(want), slices.Clone(have)
			slices.Sort(want)
			slices.Sort(have)
			if !slices.Equal(nonNilTags(want), nonNilTags(have)) {
				return false
			}
			continue
		default:
			return false
		}
		s, _ := got.(*string)
		w, _ := v.(string)
		if (s == nil && w != "") || (s != nil && *s != w) {
			return false
		}
	}
	return true
}

// customerByEmail returns the id of the customer with that email, or "".
func (c *Connector) customerByEmail(ctx context.Context, cfg Config, email string) (string, error) {
	q := emailQuery(email)
	var out struct {
		Customers struct {
			Nodes []struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			} `json:"nodes"`
		} `json:"customers"`
	}
	if err := c.call(ctx, cfg, `query Lookup($query: String!) { customers(first: 1, query: $query) { nodes { id email } } }`, map[string]any{"query": q}, lookupCost, &out); err != nil {
		return "", fmt.Errorf("look up customer by email: %w", err)
	}
	for _, n := range out.Customers.Nodes {
		if strings.EqualFold(n.Email, email) {
			return n.ID, nil
		}
	}
	return "", nil
}

// The order field written to the metafield synchron.external_id.
const (
	ExternalIDField    = "external_id"
	metafieldNamespace = "synchron"
	metafieldKey       = "external_id"
)

func (c *Connector) writeOrder(ctx context.Context, cfg Config, r sdk.WriteRecord) (sdk.WriteResult, error) {
	if r.Delete {
		return rejected("deleting orders is not supported"), nil
	}
	if r.ID == "" {
		return rejected("orders cannot be created: give the order's id to update its note or tags"), nil
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(r.Fields, &in); err != nil {
		return rejected("invalid order fields: %v", err), nil
	}
	input := map[string]any{"id": r.ID}
	for k, v := range in {
		switch k {
		case "note":
			var s *string
			if err := json.Unmarshal(v, &s); err != nil {
				return rejected("note: %v", err), nil
			}
			input["note"] = s
		case "tags":
			var t []string
			if err := json.Unmarshal(v, &t); err != nil {
				return rejected("tags: %v", err), nil
			}
			input["tags"] = t
		case ExternalIDField:
			var s *string
			if err := json.Unmarshal(v, &s); err != nil {
				return rejected("%s: %v", ExternalIDField, err), nil
			}
			value := ""
			if s != nil {
				value = *s
			}
			if value == "" {
				return rejected("%s cannot be emptied: Shopify metafields hold a value", ExternalIDField), nil
			}
			input["metafields"] = []map[string]any{{"namespace": metafieldNamespace, "key": metafieldKey, "type": "single_line_text_field", "value": value}}
		case "id", "name", "email", "total_price", "currency", "financial_status", "line_items", "customer_name", "created_at", "updated_at":
			// read only
		default:
			return rejected("unknown order field %q", k), nil
		}
	}
	doc := `mutation Write($input: OrderInput!) { orderUpdate(input: $input) { order { ` + orderFields + ` } userErrors { field message } } }`
	var out struct {
		OrderUpdate struct {
			Order      json.RawMessage `json:"order"`
			UserErrors []userError     `json:"userErrors"`
		} `json:"orderUpdate"`
	}
	if err := c.call(ctx, cfg, doc, map[string]any{"input": input}, mutationCost, &out); err != nil {
		return sdk.WriteResult{}, fmt.Errorf("orderUpdate: %w", err)
	}
	if len(out.OrderUpdate.UserErrors) > 0 {
		return rejected("%s", userErrorsMessage(out.OrderUpdate.UserErrors)), nil
	}
	fields, err := convertOrder(out.OrderUpdate.Order)
	if err != nil {
		return sdk.WriteResult{}, err
	}
	delete(fields, moreLinesKey) // the lines are not what was written
	raw, _ := json.Marshal(fields)
	return sdk.WriteResult{Status: sdk.WriteOK, Action: sdk.ActionUpdated, ID: r.ID, Fields: raw}, nil
}
