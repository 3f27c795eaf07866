package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Read limits.
const (
	DefaultReadBatch = 100
	// MaxSearchLimit is the largest search page HubSpot serves.
	MaxSearchLimit = 200
	// SearchWindow is how many results one search query can page through.
	SearchWindow = 10000
	// archiveMargin: a first read reports as deletes the records archived
	// from this long before it started (records archived while it ran).
	archiveMargin = time.Minute
)

// cursor is the checkpoint of a Read.
//
// Live records are read through the search endpoint sorted by the
// last-modified property ascending. TS/ID are the last-modified time (ms) and
// id of the last record emitted; each page is a new query for
// (modified == TS and id > ID) or (modified > TS), so no page ever reaches
// the 10,000-result window, records sharing one timestamp are neither lost nor
// repeated however many there are, and records changed during the read cannot
// shift an offset under us.
//
// Archived records (deletes) never appear in search: each read lists
// archived=true and emits those archived after ArchTS (or at ArchTS with an
// id not in ArchIDs).
type cursor struct {
	V       int      `json:"v"`
	TS      int64    `json:"ts,omitempty"`
	ID      string   `json:"id,omitempty"`
	ArchTS  int64    `json:"arch_ts"`
	ArchIDs []string `json:"arch_ids,omitempty"`
}

func (c cursor) started() bool { return c.TS != 0 || c.ID != "" }

func (c cursor) encode() []byte { b, _ := json.Marshal(c); return b }

type hsObject struct {
	ID         string             `json:"id"`
	Properties map[string]*string `json:"properties"`
	UpdatedAt  time.Time          `json:"updatedAt"`
	Archived   bool               `json:"archived"`
	ArchivedAt time.Time          `json:"archivedAt"`
}

type pageAnswer struct {
	Results []hsObject `json:"results"`
	Paging  *struct {
		Next *struct {
			After string `json:"after"`
		} `json:"next"`
	} `json:"paging"`
}

type searchFilter struct {
	PropertyName string `json:"propertyName"`
	Operator     string `json:"operator"`
	Value        string `json:"value"`
}

type filterGroup struct {
	Filters []searchFilter `json:"filters"`
}

type searchRequest struct {
	FilterGroups []filterGroup `json:"filterGroups"`
	Sorts        []string      `json:"sorts"`
	Properties   []string      `json:"properties"`
	Limit        int           `json:"limit"`
	After        string        `json:"after,omitempty"`
}

// searchFrom is the search body for the page after cursor c, of records
// modified before until (ms; 0: no bound).
func (o objectDef) searchFrom(c cursor, limit int, until int64) searchRequest {
	req := searchRequest{FilterGroups: []filterGroup{}, Sorts: []string{o.lastModified}, Properties: o.properties(), Limit: limit}
	if c.started() {
		ts := strconv.FormatInt(c.TS, 10)
		req.FilterGroups = []filterGroup{
			{Filters: []searchFilter{{o.lastModified, "EQ", ts}, {"hs_object_id", "GT", c.ID}}},
			{Filters: []searchFilter{{o.lastModified, "GT", ts}}},
		}
	}
	if until != 0 {
		bound := searchFilter{o.lastModified, "LT", strconv.FormatInt(until, 10)}
		if len(req.FilterGroups) == 0 {
			req.FilterGroups = []filterGroup{{}}
		}
		for i := range req.FilterGroups {
			req.FilterGroups[i].Filters = append(req.FilterGroups[i].Filters, bound)
		}
	}
	return req
}

func idLess(a, b string) bool {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA != nil || errB != nil {
		return a < b
	}
	return x < y
}

// Read emits the records changed since the cursor, then the deletes.
func (c *Connector) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	cfg, diags := ParseConfig(req.Config)
	if diags.HasError() {
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: diags})
	}
	o, ok := c.object(req.Object)
	if !ok {
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{sdk.Errorf("", "unknown object", fmt.Sprintf("%q is not a HubSpot object this connector reads", req.Object))}})
	}
	cur := cursor{V: 1}
	if len(req.Cursor) > 0 {
		if err := json.Unmarshal(req.Cursor, &cur); err != nil || cur.V != 1 {
			return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{sdk.Errorf("", "invalid cursor", "the checkpoint was not written by this connector version")}})
		}
	} else {
		cur.ArchTS = c.now().Add(-archiveMargin).UnixMilli()
	}
	limit := req.BatchSize
	if limit <= 0 {
		limit = DefaultReadBatch
	}
	limit = min(limit, MaxSearchLimit)
	s := c.newSession(cfg)
	var lastCP, lastCfg []byte
	if len(req.Cursor) > 0 {
		lastCP = cur.encode()
	}
	emit := func(recs []sdk.Record, cp cursor) error {
		lastCP, lastCfg = cp.encode(), s.updatedConfig()
		return sink.Emit(ctx, sdk.ReadBatch{Records: recs, Checkpoint: lastCP, UpdatedConfig: lastCfg})
	}
	// flush ends the read with an empty batch when the checkpoint (a first
	// read's archive watermark) or refreshed tokens were not handed over yet.
	flush := func(cp cursor) error {
		if string(cp.encode()) == string(lastCP) && string(s.updatedConfig()) == string(lastCfg) {
			return nil
		}
		return emit(nil, cp)
	}
	path := "/crm/v3/objects/" + o.name
	// Changes of the last seconds are left to the next read: search may not
	// show them all yet, and the cursor must not pass one it has not shown.
	var until int64
	if d := cfg.searchDelay(); d > 0 {
		until = c.now().Add(-d).UnixMilli()
	}

	for {
		var page pageAnswer
		if _, err := s.do(ctx, http.MethodPost, path+"/search", nil, o.searchFrom(cur, limit, until), &page); err != nil {
			return c.readError(ctx, sink, s, cfg, err)
		}
		recs := make([]sdk.Record, 0, len(page.Results))
		next := cur
		for _, r := range page.Results {
			ts := r.UpdatedAt.UnixMilli()
			if next.started() && (ts < next.TS || (ts == next.TS && !idLess(next.ID, r.ID))) {
				continue // not after the cursor: HubSpot's order or a late index; already emitted
			}
			recs = append(recs, sdk.Record{ID: r.ID, UpdatedAt: r.UpdatedAt, Fields: o.toFields(r.ID, r.Properties)})
			next.TS, next.ID = ts, r.ID
		}
		if len(recs) > 0 {
			cur = next
			if err := emit(recs, cur); err != nil {
				return err
			}
		}
		if len(page.Results) < limit || len(recs) == 0 {
			break
		}
	}
	cur, err := c.readArchived(ctx, s, o, cur, limit, emit)
	if err != nil {
		if _, ok := asAPIError(err); ok {
			return c.readError(ctx, sink, s, cfg, err)
		}
		return err
	}
	return flush(cur)
}

// readArchived emits the records archived since the cursor as deletes.
func (c *Connector) readArchived(ctx context.Context, s *session, o objectDef, cur cursor, limit int, emit func([]sdk.Record, cursor) error) (cursor, error) {
	seen := map[string]bool{}
	for _, id := range cur.ArchIDs {
		seen[id] = true
	}
	var gone []hsObject
	q := url.Values{"archived": {"true"}, "limit": {"100"}}
	for {
		var page pageAnswer
		if _, err := s.do(ctx, http.MethodGet, "/crm/v3/objects/"+o.name, q, nil, &page); err != nil {
			return cur, err
		}
		for _, r := range page.Results {
			ts := r.ArchivedAt.UnixMilli()
			if ts > cur.ArchTS || (ts == cur.ArchTS && !seen[r.ID]) {
				gone = append(gone, r)
			}
		}
		if page.Paging == nil || page.Paging.Next == nil || page.Paging.Next.After == "" {
			break
		}
		q.Set("after", page.Paging.Next.After)
	}
	sort.Slice(gone, func(i, j int) bool {
		a, b := gone[i].ArchivedAt.UnixMilli(), gone[j].ArchivedAt.UnixMilli()
		if a != b {
			return a < b
		}
		return idLess(gone[i].ID, gone[j].ID)
	})
	for len(gone) > 0 {
		n := min(limit, len(gone))
		recs := make([]sdk.Record, n)
		for i, r := range gone[:n] {
			ts := r.ArchivedAt.UnixMilli()
			if ts != cur.ArchTS {
				cur.ArchTS, cur.ArchIDs = ts, nil
			}
			cur.ArchIDs = append(cur.ArchIDs, r.ID)
			recs[i] = sdk.Record{ID: r.ID, UpdatedAt: r.ArchivedAt, Deleted: true}
		}
		gone = gone[n:]
		if err := emit(recs, cur); err != nil {
			return cur, err
		}
	}
	return cur, nil
}

// readError reports credential problems as a diagnostic batch, and returns
// other errors (the host retries the read).
func (c *Connector) readError(ctx context.Context, sink sdk.ReadSink, s *session, cfg Config, err error) error {
	if d, ok := credentialDiagnostic(err, cfg); ok {
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{d}, UpdatedConfig: s.updatedConfig()})
	}
	if e, ok := asAPIError(err); ok && e.Status == http.StatusBadRequest && strings.Contains(e.Message, "10000") {
		return fmt.Errorf("hubspot: search window exceeded (should not happen with keyset paging): %w", err)
	}
	return err
}
