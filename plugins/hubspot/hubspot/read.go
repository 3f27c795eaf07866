package hubspot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
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
// last-modified property ascending (HubSpot takes one sort and documents no
// order among records sharing a timestamp). TS is the boundary: every record
// modified before TS (ms) was emitted. Seen holds the records modified at TS
// already emitted, with a hash of their content: each page is a new query for
// records modified at or after TS that skips exactly those (a record edited
// again within the same millisecond has another hash and is emitted again).
// So no page reaches the 10,000-result window, records sharing one
// timestamp are never lost whatever order HubSpot returns them in, and
// records changed during the read cannot shift an offset under us.
//
// A page whose records all share one timestamp may hide more of them than a
// page holds: that group is then read on its own, sorted by id (Tie, after
// TieID), and once done Full says every record at TS was emitted (the next
// query is for records modified after TS).
//
// Archived records (deletes) never appear in search: the archive is listed
// (archived=true) at most once per deletes interval, ArchScan being the start
// of the last listing (ms), and the records archived after ArchTS (or at
// ArchTS with an id not in ArchIDs) are emitted as deletes.
type cursor struct {
	V     int               `json:"v"`
	TS    int64             `json:"ts,omitempty"`
	Seen  map[string]string `json:"seen,omitempty"`
	Full  bool              `json:"full,omitempty"`
	Tie   bool              `json:"tie,omitempty"`
	TieID string            `json:"tie_id,omitempty"`
	// ID is the last id of a version 1 checkpoint (read only).
	ID       string   `json:"id,omitempty"`
	ArchTS   int64    `json:"arch_ts"`
	ArchIDs  []string `json:"arch_ids,omitempty"`
	ArchScan int64    `json:"arch_scan,omitempty"`
}

// cursorVersion is the version of the checkpoints written; version 1
// checkpoints (last timestamp and id) are read as their timestamp, so the
// records of that millisecond are read again.
const cursorVersion = 2

func (c cursor) encode() []byte { b, _ := json.Marshal(c); return b }

// contentHash identifies the content of an emitted record.
func contentHash(fields []byte) string {
	h := sha256.Sum256(fields)
	return hex.EncodeToString(h[:8])
}

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
	var fs []searchFilter
	switch {
	case c.Full:
		fs = append(fs, searchFilter{o.lastModified, "GT", strconv.FormatInt(c.TS, 10)})
	case c.TS != 0:
		fs = append(fs, searchFilter{o.lastModified, "GTE", strconv.FormatInt(c.TS, 10)})
	}
	if until != 0 {
		fs = append(fs, searchFilter{o.lastModified, "LT", strconv.FormatInt(until, 10)})
	}
	if len(fs) > 0 {
		req.FilterGroups = []filterGroup{{Filters: fs}}
	}
	return req
}

// tieSearch is the search body for the next page of the records modified at
// c.TS, in id order after c.TieID.
func (o objectDef) tieSearch(c cursor, limit int) searchRequest {
	fs := []searchFilter{{o.lastModified, "EQ", strconv.FormatInt(c.TS, 10)}}
	if c.TieID != "" {
		fs = append(fs, searchFilter{"hs_object_id", "GT", c.TieID})
	}
	return searchRequest{FilterGroups: []filterGroup{{Filters: fs}}, Sorts: []string{"hs_object_id"}, Properties: o.properties(), Limit: limit}
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
	cur := cursor{V: cursorVersion}
	first, legacy := len(req.Cursor) == 0, false
	if !first {
		if err := json.Unmarshal(req.Cursor, &cur); err != nil || (cur.V != 1 && cur.V != cursorVersion) {
			return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{sdk.Errorf("", "invalid cursor", "the checkpoint was not written by this connector version")}})
		}
		if legacy = cur.V == 1; legacy {
			// Which records of that millisecond were read is unknown: read
			// them all again.
			cur = cursor{V: cursorVersion, TS: cur.TS, ArchTS: cur.ArchTS, ArchIDs: cur.ArchIDs}
		}
	} else {
		cur.ArchTS = c.now().Add(-archiveMargin).UnixMilli()
		if cfg.deletesInterval() > 0 {
			// The watermark starts now: the archive is first listed one
			// interval later.
			cur.ArchScan = c.now().UnixMilli()
		}
	}
	limit := req.BatchSize
	if limit <= 0 {
		limit = DefaultReadBatch
	}
	limit = min(limit, MaxSearchLimit)
	s := c.newSession(cfg)
	var lastCP, lastCfg []byte
	if !first {
		lastCP = cur.encode()
		if legacy {
			lastCP = req.Cursor // hand the new form over
		}
	}
	emit := func(recs []sdk.Record, cp cursor) error {
		lastCP, lastCfg = cp.encode(), s.updatedConfig()
		return sink.Emit(ctx, sdk.ReadBatch{Records: recs, Checkpoint: lastCP, UpdatedConfig: lastCfg})
	}
	// flush ends the read with an empty batch when the checkpoint (a first
	// read's archive watermark, a finished scan of the archive) or
	// refreshed tokens were not handed over yet.
	flush := func(cp cursor) error {
		if string(cp.encode()) == string(lastCP) && string(s.updatedConfig()) == string(lastCfg) {
			return nil
		}
		return emit(nil, cp)
	}
	path := "/crm/v3/objects/" + o.name
	// Changes of the last seconds are left to the next read: search may not
	// show them all yet, and the cursor must not pass one it has not shown.
	start := c.now()
	var until int64
	if d := cfg.searchDelay(); d > 0 {
		until = start.Add(-d).UnixMilli()
	}

	for {
		var page pageAnswer
		body := o.searchFrom(cur, limit, until)
		if cur.Tie {
			body = o.tieSearch(cur, limit)
		}
		if _, err := s.do(ctx, http.MethodPost, path+"/search", nil, body, &page); err != nil {
			return c.readError(ctx, sink, s, cfg, err)
		}
		recs := make([]sdk.Record, 0, len(page.Results))
		next := cur
		next.Seen = maps.Clone(cur.Seen)
		for _, r := range page.Results {
			ts := r.UpdatedAt.UnixMilli()
			if ts < cur.TS || (ts == cur.TS && cur.Full) || (cur.Tie && ts != cur.TS) {
				continue // not after the boundary (a late index): already emitted
			}
			fields := o.toFields(r.ID, r.Properties)
			h := contentHash(fields)
			if ts == next.TS && next.Seen[r.ID] == h {
				continue // emitted at the boundary, unchanged
			}
			recs = append(recs, sdk.Record{ID: r.ID, UpdatedAt: r.UpdatedAt, Fields: fields})
			if cur.Tie {
				continue // the id order is the checkpoint
			}
			if ts > next.TS || next.Seen == nil {
				next.TS, next.Seen, next.Full = ts, map[string]string{}, false
			}
			next.Seen[r.ID] = h
		}
		full := len(page.Results) >= limit
		wasTie := cur.Tie
		if wasTie {
			for _, r := range page.Results {
				if next.TieID == "" || idLess(next.TieID, r.ID) {
					next.TieID = r.ID
				}
			}
			if full && next.TieID == cur.TieID {
				return c.readError(ctx, sink, s, cfg, fmt.Errorf("hubspot: search of %s by id made no progress after id %s", o.name, cur.TieID))
			}
			if !full { // the group is done: next, the records modified after it
				next = cursor{V: cursorVersion, TS: cur.TS, Full: true, ArchTS: cur.ArchTS, ArchIDs: cur.ArchIDs, ArchScan: cur.ArchScan}
			}
		} else if full && !next.Full {
			first, last := page.Results[0].UpdatedAt.UnixMilli(), page.Results[len(page.Results)-1].UpdatedAt.UnixMilli()
			if first == last && first == next.TS {
				// A whole page shares the boundary timestamp: the rest of
				// that group may lie beyond every page of this query. Read
				// the group by id.
				next.Tie, next.TieID = true, ""
			}
		}
		cur = next
		if len(recs) > 0 {
			if err := emit(recs, cur); err != nil {
				return err
			}
		}
		if wasTie || cur.Tie {
			continue
		}
		if !full || len(recs) == 0 {
			break
		}
	}
	if interval := cfg.deletesInterval(); interval == 0 || start.UnixMilli()-cur.ArchScan >= interval.Milliseconds() {
		var err error
		cur, err = c.readArchived(ctx, s, o, cur, limit, emit)
		if err != nil {
			if _, ok := asAPIError(err); ok {
				return c.readError(ctx, sink, s, cfg, err)
			}
			return err
		}
		cur.ArchScan = start.UnixMilli()
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
