package hubspot

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Write limits.
const (
	// MaxBatch is the most inputs of one batch call.
	MaxBatch = 100
	// defaultRetryAfter is suggested for a transient failure without Retry-After.
	defaultRetryAfter = 10 * time.Second
)

type batchInput struct {
	ID                 string            `json:"id,omitempty"`
	IDProperty         string            `json:"idProperty,omitempty"`
	Properties         map[string]string `json:"properties"`
	Associations       *[]any            `json:"associations,omitempty"`
	ObjectWriteTraceID string            `json:"objectWriteTraceId,omitempty"`
}

type archiveInput struct {
	ID string `json:"id"`
}

type batchAnswer struct {
	Results []struct {
		hsObject
		New                *bool  `json:"new"`
		ObjectWriteTraceID string `json:"objectWriteTraceId"`
	} `json:"results"`
	Errors []struct {
		Message  string              `json:"message"`
		Category string              `json:"category"`
		Context  map[string][]string `json:"context"`
	} `json:"errors"`
}

// writer is one Write call.
type writer struct {
	c       *Connector
	s       *session
	cfg     Config
	o       objectDef
	req     sdk.WriteRequest
	props   []map[string]string
	results []sdk.WriteResult
	diags   sdk.Diagnostics
}

// Write applies the records in batches of 100: archive for deletes, update
// for records with an id, upsert by email for contacts with an email, create
// otherwise.
func (c *Connector) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	cfg, diags := ParseConfig(req.Config)
	results := make([]sdk.WriteResult, len(req.Records))
	for i, r := range req.Records {
		results[i] = sdk.WriteResult{Ref: r.Ref, ID: r.ID}
	}
	fail := func(d sdk.Diagnostics, msg string) *sdk.WriteResponse {
		for i := range results {
			results[i].Status, results[i].Message = sdk.WriteRejected, msg
		}
		return &sdk.WriteResponse{Results: results, Diagnostics: d}
	}
	if diags.HasError() {
		return fail(diags, "invalid config"), nil
	}
	o, ok := c.object(req.Object)
	if !ok {
		return fail(sdk.Diagnostics{sdk.Errorf("", "unknown object", req.Object)}, "unknown object "+req.Object), nil
	}
	w := &writer{c: c, s: c.newSession(cfg), cfg: cfg, o: o, req: req, props: make([]map[string]string, len(req.Records)), results: results}
	var archive, update, upsert, create []int
	for i, r := range req.Records {
		if r.Delete {
			if r.ID == "" {
				w.reject(i, "a delete needs the record's id")
				continue
			}
			archive = append(archive, i)
			continue
		}
		p, err := o.toProperties(r.Fields)
		if err != nil {
			w.reject(i, "fields are not a JSON object: "+err.Error())
			continue
		}
		w.props[i] = p
		switch {
		case r.ID != "":
			update = append(update, i)
		case o.natural != "" && p[o.natural] != "":
			upsert = append(upsert, i)
		default:
			create = append(create, i)
		}
	}
	// Creates the host marks MayExistSince (an earlier attempt was sent and
	// its outcome lost) are looked for first, before this call writes
	// anything; those not found join the batch create. Upserts by email
	// (contacts with an email) need no look: the upsert updates the record
	// the lost attempt made, if any.
	create = w.mayExist(ctx, create)
	for _, chunk := range chunks(archive, nil) {
		w.archive(ctx, chunk)
	}
	for _, chunk := range chunks(update, nil) {
		w.batch(ctx, "update", chunk)
	}
	for _, chunk := range chunks(upsert, func(i int) string { return strings.ToLower(w.props[i][o.natural]) }) {
		w.batch(ctx, "upsert", chunk)
	}
	for _, chunk := range chunks(create, nil) {
		w.batch(ctx, "create", chunk)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("hubspot: write %s: %w", o.name, ctx.Err())
	}
	return &sdk.WriteResponse{Results: w.results, Diagnostics: w.diags, UpdatedConfig: w.s.updatedConfig()}, nil
}

// chunks splits indices into batches of at most MaxBatch; with key, a batch
// never holds two records with the same key (HubSpot refuses duplicate upsert
// ids in one call).
func chunks(idx []int, key func(int) string) [][]int {
	var out [][]int
	var cur []int
	keys := map[string]bool{}
	for _, i := range idx {
		k := ""
		if key != nil {
			k = key(i)
		}
		if len(cur) == MaxBatch || (key != nil && keys[k]) {
			out = append(out, cur)
			cur, keys = nil, map[string]bool{}
		}
		cur = append(cur, i)
		keys[k] = true
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (w *writer) reject(i int, msg string) {
	w.results[i].Status, w.results[i].Message = sdk.WriteRejected, msg
}

func (w *writer) retry(i int, after time.Duration, msg string) {
	if after <= 0 {
		after = defaultRetryAfter
	}
	w.results[i].Status, w.results[i].RetryAfter, w.results[i].Message = sdk.WriteRetryable, after, msg
}

// callFailed settles the records of a failed call; false when the call
// should be split (a whole-batch 400 of several records).
func (w *writer) callFailed(idx []int, err error) bool {
	e, ok := asAPIError(err)
	switch {
	case !ok || e.Retryable():
		var after time.Duration
		if ok {
			after = e.RetryAfter
		}
		for _, i := range idx {
			w.retry(i, after, err.Error())
		}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		if d, ok := credentialDiagnostic(err, w.cfg); ok && len(w.diags) == 0 {
			w.diags = append(w.diags, d)
		}
		for _, i := range idx {
			w.retry(i, 0, err.Error())
		}
	case (e.Status == http.StatusBadRequest || e.Status == http.StatusConflict) && len(idx) > 1:
		return false
	default:
		for _, i := range idx {
			w.reject(i, e.Message)
		}
	}
	return true
}

func (w *writer) archive(ctx context.Context, idx []int) {
	in := make([]archiveInput, len(idx))
	for j, i := range idx {
		in[j] = archiveInput{ID: w.req.Records[i].ID}
	}
	_, err := w.s.do(ctx, http.MethodPost, "/crm/v3/objects/"+w.o.name+"/batch/archive", nil, map[string]any{"inputs": in}, nil)
	if err != nil {
		if !w.callFailed(idx, err) {
			half := len(idx) / 2
			w.archive(ctx, idx[:half])
			w.archive(ctx, idx[half:])
		}
		return
	}
	for _, i := range idx {
		w.results[i].Status, w.results[i].Action = sdk.WriteOK, sdk.ActionDeleted
	}
}

// batch runs one create, update or upsert call and settles its records. A
// whole-batch 400 is split in halves until the faulty records stand alone.
func (w *writer) batch(ctx context.Context, op string, idx []int) {
	inputs := make([]batchInput, len(idx))
	byID := map[string]int{}
	for j, i := range idx {
		in := batchInput{Properties: w.props[i], ObjectWriteTraceID: strconv.Itoa(i)}
		switch op {
		case "update":
			in.ID = w.req.Records[i].ID
			byID[in.ID] = i
		case "upsert":
			props := make(map[string]string, len(in.Properties))
			for k, v := range in.Properties {
				if k != w.o.natural {
					props[k] = v
				}
			}
			in.ID, in.IDProperty, in.Properties = w.props[i][w.o.natural], w.o.natural, props
			byID[strings.ToLower(in.ID)] = i
		case "create":
			none := []any{}
			in.Associations = &none
		}
		inputs[j] = in
	}
	var ans batchAnswer
	sent := w.c.now()
	_, err := w.s.do(ctx, http.MethodPost, "/crm/v3/objects/"+w.o.name+"/batch/"+op, nil, map[string]any{"inputs": inputs}, &ans)
	if err != nil {
		if op == "create" && ctx.Err() == nil && outcomeUnknown(err) {
			// HubSpot may have created the records before failing: answering
			// retryable would make the host create them again.
			idx = w.findCreated(ctx, idx, sent)
			if len(idx) == 0 {
				return
			}
		}
		if !w.callFailed(idx, err) {
			half := len(idx) / 2
			w.batch(ctx, op, idx[:half])
			w.batch(ctx, op, idx[half:])
		}
		return
	}
	settled := map[int]bool{}
	inChunk := map[int]bool{}
	for _, i := range idx {
		inChunk[i] = true
	}
	find := func(trace string, ids ...string) (int, bool) {
		if n, err := strconv.Atoi(trace); err == nil && inChunk[n] && !settled[n] {
			return n, true
		}
		for _, id := range ids {
			if i, ok := byID[strings.ToLower(id)]; ok && !settled[i] {
				return i, true
			}
			if i, ok := byID[id]; ok && !settled[i] {
				return i, true
			}
		}
		return 0, false
	}
	for k, r := range ans.Results {
		i, ok := find(r.ObjectWriteTraceID, r.ID)
		if !ok && op == "create" && r.ObjectWriteTraceID == "" && len(ans.Errors) == 0 && k < len(idx) {
			i, ok = idx[k], true // no trace ids echoed: results follow the inputs
		}
		if !ok {
			continue
		}
		settled[i] = true
		res := &w.results[i]
		res.Status, res.ID = sdk.WriteOK, r.ID
		switch {
		case op == "create" || (r.New != nil && *r.New):
			res.Action = sdk.ActionCreated
		default:
			res.Action = sdk.ActionUpdated
		}
		res.Fields = w.o.toFields(r.ID, r.Properties)
	}
	for _, e := range ans.Errors {
		var trace string
		if t := e.Context["objectWriteTraceId"]; len(t) > 0 {
			trace = t[0]
		}
		i, ok := find(trace, e.Context["ids"]...)
		if !ok {
			continue
		}
		settled[i] = true
		msg := e.Message
		if e.Category != "" {
			msg = e.Category + ": " + msg
		}
		if e.Category == "RATE_LIMITS" || strings.HasPrefix(e.Category, "INTERNAL") {
			w.retry(i, 0, msg)
		} else {
			w.reject(i, msg)
		}
	}
	for _, i := range idx {
		if !settled[i] {
			w.retry(i, 0, "HubSpot answered no result for this record")
		}
	}
}

// outcomeUnknown reports whether a failed call may have been applied: a
// server error or no answer at all.
func outcomeUnknown(err error) bool {
	e, ok := asAPIError(err)
	return !ok || e.Status >= 500
}

// Looking for the records a failed create may have made.
const (
	// createdMargin: records created from this long before the call count
	// (clock differences between HubSpot and us).
	createdMargin = time.Minute
	// maxLookupProps is how many properties of a record the search filters
	// on (6 filters per group, one is the creation time).
	maxLookupProps = 5
)

// findCreated looks, after a create whose outcome is unknown, for the
// records it may have made: records created since the call (less a margin)
// with every property sent. A record with exactly one such match is settled
// OK with it; the others (none, or several matches) are returned.
func (w *writer) findCreated(ctx context.Context, idx []int, sent time.Time) []int {
	if w.waitIndexed(ctx, sent) != nil {
		return idx
	}
	// A failed search leaves its records unmatched: retryable.
	matches, found, _ := w.lookCreated(ctx, idx, sent, nil)
	claims := map[string]int{}
	for _, ids := range matches {
		if len(ids) == 1 {
			claims[ids[0]]++
		}
	}
	var rest []int
	for _, i := range idx {
		ids := matches[i]
		if len(ids) != 1 || claims[ids[0]] != 1 {
			rest = append(rest, i)
			continue
		}
		w.settleFound(i, found[ids[0]])
	}
	return rest
}

// waitIndexed waits until records created at sent show in search (fresh
// writes take a few seconds: search_delay_seconds).
func (w *writer) waitIndexed(ctx context.Context, sent time.Time) error {
	if d := w.cfg.searchDelay(); d > 0 {
		if wait := sent.Add(d).Sub(w.c.now()); wait > 0 {
			return w.c.sleep(ctx, wait)
		}
	}
	return nil
}

func (w *writer) settleFound(i int, r hsObject) {
	res := &w.results[i]
	res.Status, res.ID, res.Action = sdk.WriteOK, r.ID, sdk.ActionCreated
	res.Fields = w.o.toFields(r.ID, r.Properties)
}

// mayExist looks for the record of each create marked MayExistSince (one
// search each: such records are rare, only after the host lost an answer),
// among the records created since that time (less createdMargin) with every
// property sent, leaving out records already answered to an earlier record
// of the call. One match answers the record OK (created) with it; several
// reject it naming them; a failed search makes it retryable (it is not
// sent). It returns the creates to send: those without MayExistSince and
// those not found.
func (w *writer) mayExist(ctx context.Context, create []int) []int {
	var send []int
	claimed := map[string]bool{}
	for _, i := range create {
		since := w.req.Records[i].MayExistSince
		if since.IsZero() {
			send = append(send, i)
			continue
		}
		if err := w.waitIndexed(ctx, since); err != nil {
			w.retry(i, 0, "hubspot: looking for the record an earlier attempt may have created: "+err.Error())
			continue
		}
		matches, found, err := w.lookCreated(ctx, []int{i}, since, claimed)
		if err != nil {
			// Never sent blindly: retryable, whatever the search's failure.
			var after time.Duration
			if e, ok := asAPIError(err); ok {
				after = e.RetryAfter
			}
			if d, ok := credentialDiagnostic(err, w.cfg); ok && len(w.diags) == 0 {
				w.diags = append(w.diags, d)
			}
			w.retry(i, after, "hubspot: an earlier attempt of this create had an unknown outcome and looking for the record failed ("+
				err.Error()+"): not sent; the next attempt looks again")
			continue
		}
		switch ids := matches[i]; len(ids) {
		case 0:
			send = append(send, i)
		case 1:
			claimed[ids[0]] = true
			w.settleFound(i, found[ids[0]])
		default:
			w.reject(i, fmt.Sprintf("hubspot: an earlier attempt of this create had an unknown outcome and %d records like it were created since (%s): not created again; check them in HubSpot",
				len(ids), strings.Join(ids, ", ")))
		}
	}
	return send
}

// lookCreated searches, for each record of idx, the records created since
// sent (less createdMargin) holding every property sent, ids in skip left
// out. It returns each record's matching ids and the records found; err is
// the first failed search (its records have no matches). A record without
// any property is not searched (nothing to recognise it by).
func (w *writer) lookCreated(ctx context.Context, idx []int, sent time.Time, skip map[string]bool) (map[int][]string, map[string]hsObject, error) {
	since := strconv.FormatInt(sent.Add(-createdMargin).UnixMilli(), 10)
	matches := map[int][]string{}
	found := map[string]hsObject{}
	var firstErr error
	var group []int
	var req searchRequest
	nFilters := 0
	search := func() {
		if len(group) == 0 {
			return
		}
		defer func() { group, req, nFilters = nil, searchRequest{}, 0 }()
		req.Sorts, req.Limit = []string{"createdate"}, MaxSearchLimit
		var page pageAnswer
		if _, err := w.s.do(ctx, http.MethodPost, "/crm/v3/objects/"+w.o.name+"/search", nil, req, &page); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		for _, i := range group {
			for _, r := range page.Results {
				if !skip[r.ID] && sameProperties(w.props[i], r.Properties) {
					matches[i] = append(matches[i], r.ID)
					found[r.ID] = r
				}
			}
		}
	}
	for _, i := range idx {
		var keys []string
		for k, v := range w.props[i] {
			if strings.TrimSpace(v) != "" {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			continue // nothing to recognise it by
		}
		sort.Strings(keys)
		fs := []searchFilter{{"createdate", "GTE", since}}
		for _, k := range keys[:min(len(keys), maxLookupProps)] {
			fs = append(fs, searchFilter{k, "EQ", w.props[i][k]})
		}
		if len(req.FilterGroups) == 5 || nFilters+len(fs) > 18 {
			search()
		}
		if req.Properties == nil {
			req.Properties = w.o.properties()
		}
		for _, k := range keys {
			if !slices.Contains(req.Properties, k) {
				req.Properties = append(req.Properties, k)
			}
		}
		req.FilterGroups = append(req.FilterGroups, filterGroup{Filters: fs})
		nFilters += len(fs)
		group = append(group, i)
	}
	search()
	return matches, found, firstErr
}

// sameProperties reports whether a record holds every non-empty property
// sent (HubSpot may normalise case, spaces and numbers).
func sameProperties(sent map[string]string, got map[string]*string) bool {
	for k, v := range sent {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		g, ok := got[k]
		if !ok || g == nil {
			return false
		}
		h := strings.TrimSpace(*g)
		if strings.EqualFold(v, h) {
			continue
		}
		x, errX := strconv.ParseFloat(v, 64)
		y, errY := strconv.ParseFloat(h, 64)
		if errX != nil || errY != nil || x != y {
			return false
		}
	}
	return true
}
