// Package sample is the sample connector: a read-only source of deterministic
// fake records (contacts and orders) for demos and benchmarks. Record i of a
// config is a pure function of (seed, i), so reads are repeatable and a
// checkpoint is simply the index of the next record.
package sample

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// Object names.
const (
	ObjectContacts = "contacts"
	ObjectOrders   = "orders"
)

// Batch sizes of Read.
const (
	DefaultBatchSize = 1000
	MaxBatchSize     = 10_000
)

// Connector is the sample connector. It is safe for concurrent use.
type Connector struct {
	version string
	docs    string
	tables  *tables
}

var _ sdk.Connector = (*Connector)(nil)

// New returns the sample connector reporting the given version (surrounding
// whitespace is trimmed: it usually comes from an embedded VERSION file) and
// Markdown docs.
func New(version, docs string) *Connector {
	return &Connector{version: strings.TrimSpace(version), docs: docs, tables: newTables()}
}

func objects() []sdk.Object {
	return []sdk.Object{
		{
			Name:        ObjectContacts,
			Description: "Fake people with unique emails.",
			Fields: []sdk.Field{
				{Name: "id", Type: sdk.TypeString, Required: true, ReadOnly: true, Description: `"c_" and the 1-based record number on 8 digits`},
				{Name: "email", Type: sdk.TypeString, Required: true, Description: "first.last.<number>@example.com, unique"},
				{Name: "first_name", Type: sdk.TypeString},
				{Name: "last_name", Type: sdk.TypeString},
				{Name: "phone", Type: sdk.TypeString},
				{Name: "company", Type: sdk.TypeString},
				{Name: "updated_at", Type: sdk.TypeDateTime, ReadOnly: true, Description: "updated_at of the config plus the record's index in seconds"},
			},
			IDField:     "id",
			Readable:    true,
			Incremental: true,
		},
		{
			Name:        ObjectOrders,
			Description: "Fake orders, each placed by one of the contacts.",
			Fields: []sdk.Field{
				{Name: "id", Type: sdk.TypeString, Required: true, ReadOnly: true, Description: `"o_" and the 1-based record number on 8 digits`},
				{Name: "customer_email", Type: sdk.TypeString, Required: true, Description: "email of a contact of the same config"},
				{Name: "total", Type: sdk.TypeNumber, Description: "amount with two decimals"},
				{Name: "currency", Type: sdk.TypeString, Description: "ISO 4217 code"},
				{Name: "status", Type: sdk.TypeString, Description: "pending, paid, shipped, delivered, refunded or cancelled"},
				{Name: "created_at", Type: sdk.TypeDateTime, ReadOnly: true},
				{Name: "updated_at", Type: sdk.TypeDateTime, ReadOnly: true},
			},
			IDField:     "id",
			Readable:    true,
			Incremental: true,
		},
	}
}

// Spec implements sdk.Connector.
func (c *Connector) Spec(context.Context) (*sdk.Spec, error) {
	return &sdk.Spec{
		Name:            "sample",
		Version:         c.version,
		Title:           "Sample data",
		ConfigSchema:    json.RawMessage(configSchema),
		Objects:         objects(),
		Capabilities:    sdk.Capabilities{Read: true},
		Docs:            c.docs,
		ProtocolVersion: sdk.ProtocolVersion,
	}, nil
}

// Check implements sdk.Connector: it validates the config (there is no app to
// reach).
func (c *Connector) Check(_ context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	_, diags := ParseConfig(req.Config)
	return &sdk.CheckResponse{Diagnostics: diags}, nil
}

// Discover implements sdk.Connector: the objects do not depend on the config.
func (c *Connector) Discover(_ context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	_, diags := ParseConfig(req.Config)
	if diags.HasError() {
		return &sdk.DiscoverResponse{Diagnostics: diags}, nil
	}
	return &sdk.DiscoverResponse{Objects: objects()}, nil
}

// Read implements sdk.Connector. The cursor is {"next": <index of the next
// record>}; each batch's checkpoint is the cursor after it. A read ends at
// the config's count; raising count later and resuming reads the new records.
func (c *Connector) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	cfg, diags := ParseConfig(req.Config)
	if req.Object != ObjectContacts && req.Object != ObjectOrders {
		diags = append(diags, sdk.Errorf("", fmt.Sprintf("unknown object %q", req.Object), "objects: contacts, orders"))
	}
	next, err := parseCursor(req.Cursor)
	if err != nil {
		diags = append(diags, sdk.Errorf("", "invalid cursor", err.Error()))
	}
	if diags.HasError() {
		if err := sink.Emit(ctx, sdk.ReadBatch{Diagnostics: diags}); err != nil {
			return fmt.Errorf("sample: read: %w", err)
		}
		return nil
	}

	bs := int64(req.BatchSize)
	if bs <= 0 {
		bs = DefaultBatchSize
	}
	bs = min(bs, MaxBatchSize)
	g := &generator{t: c.tables, count: cfg.Count, seed: cfg.Seed, base: cfg.Base}
	build, size := g.appendContact, 240
	if req.Object == ObjectOrders {
		build, size = g.appendOrder, 260
	}
	for next < cfg.Count {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sample: read: %w", err)
		}
		end := min(next+bs, cfg.Count)
		n := int(end - next)
		// One buffer per batch holds every record's JSON. If it grows, the
		// records already sliced keep the old array, which is never written
		// again, so every slice stays valid.
		buf := make([]byte, 0, n*size)
		recs := make([]sdk.Record, n)
		for j := range recs {
			i := next + int64(j)
			start := len(buf)
			buf = build(buf, i)
			recs[j] = sdk.Record{
				ID:        string(buf[start+7 : start+17]), // {"id":"c_00000001"
				UpdatedAt: g.updatedAt(i),
				Fields:    buf[start:len(buf):len(buf)],
			}
		}
		checkpoint := strconv.AppendInt([]byte(`{"next":`), end, 10)
		checkpoint = append(checkpoint, '}')
		if err := sink.Emit(ctx, sdk.ReadBatch{Records: recs, Checkpoint: checkpoint}); err != nil {
			return fmt.Errorf("sample: read: %w", err)
		}
		next = end
	}
	return nil
}

// parseCursor returns the index a cursor resumes at (0 for none).
func parseCursor(cursor []byte) (int64, error) {
	if len(cursor) == 0 {
		return 0, nil
	}
	var c struct {
		Next *int64 `json:"next"`
	}
	if err := json.Unmarshal(cursor, &c); err != nil {
		return 0, fmt.Errorf("cursor %q: %w", cursor, err)
	}
	if c.Next == nil || *c.Next < 0 {
		return 0, fmt.Errorf("cursor %q: want {\"next\": <index >= 0>}", cursor)
	}
	return *c.Next, nil
}

// Write implements sdk.Connector: the sample connector is a source only, so
// every record is rejected.
func (c *Connector) Write(_ context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	resp := &sdk.WriteResponse{
		Results:     make([]sdk.WriteResult, len(req.Records)),
		Diagnostics: sdk.Diagnostics{sdk.Errorf("", "sample is a source only", "it does not accept writes")},
	}
	for i, r := range req.Records {
		resp.Results[i] = sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRejected, Message: "sample is a source only"}
	}
	return resp, nil
}

// HandleWebhook implements sdk.Connector: the sample connector has no
// webhooks.
func (c *Connector) HandleWebhook(context.Context, sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return &sdk.WebhookResponse{
		Verified:    false,
		Diagnostics: sdk.Diagnostics{sdk.Errorf("", "sample does not accept webhooks", "")},
	}, nil
}

// Stop implements sdk.Connector: there is nothing to release.
func (c *Connector) Stop(context.Context) error { return nil }
