package sage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Write implements sdk.Connector: POST to create, PUT to update (records
// without an id are matched on the object's natural key first), DELETE.
func (c *Connector) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	resp := &sdk.WriteResponse{Results: make([]sdk.WriteResult, len(req.Records))}
	for i, r := range req.Records {
		resp.Results[i] = sdk.WriteResult{Ref: r.Ref, ID: r.ID}
	}
	rejectAll := func(msg string) {
		for i := range resp.Results {
			resp.Results[i].Status, resp.Results[i].Message = sdk.WriteRejected, msg
		}
	}
	cfg, d := parseConfig(req.Config)
	if d.HasError() {
		resp.Diagnostics = d
		rejectAll("invalid config")
		return resp, nil
	}
	o, ok := findObject(req.Object)
	if !ok || !o.writable {
		resp.Diagnostics = sdk.Diagnostics{sdk.Errorf("", "object "+req.Object+" is not writable", "")}
		rejectAll("object not writable")
		return resp, nil
	}
	k := c.newCall(cfg)
	claimed := map[string]bool{}
	for i, r := range req.Records {
		res := &resp.Results[i]
		err := k.writeOne(ctx, o, r, res, claimed)
		if err == nil {
			res.Status = sdk.WriteOK
			claimed[res.ID] = true
			continue
		}
		var ae *apiError
		var unchecked *errUnchecked
		var ambiguous *errAmbiguous
		switch {
		case errors.As(err, &ambiguous):
			res.Status, res.Message = sdk.WriteRejected, "sage: "+err.Error()
		case errors.As(err, &unchecked):
			// Sage is failing: the rest of the batch waits for the retry.
			wait, _ := sdk.IsRetryable(unchecked.check)
			if errors.As(unchecked.check, &ae) {
				wait = max(wait, ae.RetryAfter)
			}
			wait = max(wait, time.Second)
			for j := i; j < len(req.Records); j++ {
				resp.Results[j].Status, resp.Results[j].RetryAfter = sdk.WriteRetryable, wait
				resp.Results[j].Message = "sage: not attempted: Sage is failing (" + unchecked.check.Error() + ")"
			}
			res.Message = "sage: " + err.Error()
			resp.UpdatedConfig = k.updatedConfig()
			return resp, nil
		case errors.As(err, &ae) && ae.retryable():
			// Sage is throttling or failing: the rest of the batch would
			// meet the same answer; leave it for the retry.
			for j := i; j < len(req.Records); j++ {
				resp.Results[j].Status, resp.Results[j].RetryAfter = sdk.WriteRetryable, ae.RetryAfter
				resp.Results[j].Message = ae.Error()
			}
			resp.UpdatedConfig = k.updatedConfig()
			return resp, nil
		case errors.As(err, &ae):
			res.Status, res.Message = sdk.WriteRejected, ae.Error()
		case isAuth(err):
			resp.Diagnostics = diagnose(err)
			for j := i; j < len(req.Records); j++ {
				resp.Results[j].Status, resp.Results[j].Message = sdk.WriteRetryable, "credentials rejected: "+err.Error()
			}
			resp.UpdatedConfig = k.updatedConfig()
			return resp, nil
		case errors.Is(err, errBadRecord):
			res.Status, res.Message = sdk.WriteRejected, err.Error()
		default:
			if ctx.Err() != nil {
				resp.UpdatedConfig = k.updatedConfig()
				return resp, fmt.Errorf("sage write %s: %w", o.name, err)
			}
			res.Status, res.Message, res.RetryAfter = sdk.WriteRetryable, err.Error(), time.Second
		}
	}
	resp.UpdatedConfig = k.updatedConfig()
	return resp, nil
}

var errBadRecord = errors.New("invalid record")

// writeOne writes one record. claimed are the ids earlier records of the
// call were written to.
func (k *call) writeOne(ctx context.Context, o objectDef, r sdk.WriteRecord, res *sdk.WriteResult, claimed map[string]bool) error {
	if r.Delete {
		if r.ID == "" {
			return fmt.Errorf("%w: delete without an id", errBadRecord)
		}
		err := k.do(ctx, http.MethodDelete, "/"+o.path+"/"+url.PathEscape(r.ID), nil, nil)
		var ae *apiError
		if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
			return err
		}
		res.Action = sdk.ActionDeleted
		return nil
	}
	var fields map[string]any
	if err := json.Unmarshal(r.Fields, &fields); err != nil || fields == nil {
		return fmt.Errorf("%w: fields are not a JSON object", errBadRecord)
	}
	body, err := o.body(fields)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRecord, err)
	}
	id := r.ID
	upsert := false
	if id == "" && o.naturalKey != "" {
		if key, ok := fields[o.naturalKey].(string); ok && key != "" {
			upsert = true
			if id, err = k.lookup(ctx, o, key); err != nil {
				return err
			}
		}
	}
	if id == "" {
		res.Action = sdk.ActionCreated
		// A create the host marks MayExistSince (an earlier attempt's
		// outcome is unknown) looks for the record first. Not when it
		// upserts by its natural key (contacts with a reference, products
		// with an item_code): the lookup above already found it if it was
		// made, so nothing more to do there.
		var mayExist time.Time
		if !upsert {
			mayExist = r.MayExistSince
		}
		return k.create(ctx, o, fields, body, mayExist, res, claimed)
	}
	var out map[string]any
	if err := k.do(ctx, http.MethodPut, "/"+o.path+"/"+url.PathEscape(id), body, &out); err != nil {
		return err
	}
	res.Action = sdk.ActionUpdated
	k.answer(o, out, id, res)
	return nil
}

// answer fills a result from the record Sage answered (or found).
func (k *call) answer(o objectDef, rec map[string]any, id string, res *sdk.WriteResult) {
	res.ID, _ = rec["id"].(string)
	if res.ID == "" {
		res.ID = id
	}
	if raw, err := json.Marshal(o.flatten(rec)); err == nil {
		res.Fields = raw
	}
}

// createMargin is how far before the connector's clock a record that a
// create with an unknown outcome may have made is looked for (clock skew
// between the connector and Sage).
const createMargin = 5 * time.Minute

// pendingTTL is how long the process remembers a create whose outcome is
// unknown (its next attempt looks for the record before sending it).
const pendingTTL = 24 * time.Hour

// errUnchecked: a create's outcome is unknown and looking for the record
// failed: it is not sent again in this call.
type errUnchecked struct{ sent, check error }

func (e *errUnchecked) Error() string {
	what := "an earlier attempt of this create had an unknown outcome"
	if e.sent != nil {
		what = fmt.Sprintf("the create's outcome is unknown (%v)", e.sent)
	}
	return what + fmt.Sprintf(" and looking for the record in Sage failed (%v): not sent again; the next attempt looks first", e.check)
}

// errAmbiguous: a create's outcome is unknown and several records like it
// were created meanwhile: which one it made cannot be told.
type errAmbiguous struct {
	sent error
	ids  []string
}

func (e *errAmbiguous) Error() string {
	what := "an earlier attempt of this create had an unknown outcome"
	if e.sent != nil {
		what = fmt.Sprintf("the create's outcome is unknown (%v)", e.sent)
	}
	return what + fmt.Sprintf(" and %d records like it were created in Sage since (%s): not created again; check them in Sage",
		len(e.ids), strings.Join(e.ids, ", "))
}

// create POSTs a new record. Sage has no idempotency key, and a POST answered
// 5xx, or whose connection broke after it was sent, may have been applied:
// it is never sent again blindly. The connector looks for the record it may
// have made (the records created since just before the POST, compared on
// the fields sent): one found is the answer (created); none, the create is
// retryable; a failed look is retryable without sending again, and the
// process remembers the create so that its next attempt looks first.
//
// mayExist (sdk.WriteRecord.MayExistSince, zero when unset) is the host's
// own unknown outcome (it died or lost the answer after sending the create,
// possibly in another process): the same look, from mayExist, is made
// before sending; the earlier of it and the process's memory bounds it.
func (k *call) create(ctx context.Context, o objectDef, fields, body map[string]any, mayExist time.Time, res *sdk.WriteResult, claimed map[string]bool) error {
	key := k.pendingKey(o, body)
	since, ok := k.c.pendingCreate(key)
	if !mayExist.IsZero() && (!ok || mayExist.Before(since)) {
		since, ok = mayExist, true
	}
	if ok {
		found, err := k.findCreated(ctx, o, fields, since, claimed)
		if err != nil {
			return &errUnchecked{nil, err}
		}
		switch len(found) {
		case 0: // not made: send it
		case 1:
			k.c.settleCreate(key)
			k.answer(o, found[0], "", res)
			return nil
		default:
			k.c.settleCreate(key)
			return &errAmbiguous{nil, recordIDs(found)}
		}
	}
	before := k.c.opts.Now()
	var out map[string]any
	err := k.do(ctx, http.MethodPost, "/"+o.path, body, &out)
	if err == nil {
		k.c.settleCreate(key)
		k.answer(o, out, "", res)
		return nil
	}
	if !outcomeUnknown(err) && ctx.Err() == nil {
		return err // refused (4xx, 429): nothing was made
	}
	k.c.rememberCreate(key, before)
	if ctx.Err() != nil {
		return err
	}
	found, cerr := k.findCreated(ctx, o, fields, before, claimed)
	if cerr != nil {
		return &errUnchecked{err, cerr}
	}
	switch len(found) {
	case 0:
		return err // not made: retryable as the answer says
	case 1:
		k.c.settleCreate(key)
		k.answer(o, found[0], "", res)
		return nil
	default:
		k.c.settleCreate(key)
		return &errAmbiguous{err, recordIDs(found)}
	}
}

func recordIDs(recs []map[string]any) []string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, fmt.Sprint(r["id"]))
	}
	return ids
}

// findCreated lists the records created or updated since createMargin
// before since and returns those created since then that match the fields
// a create sent (ids in claimed excluded).
func (k *call) findCreated(ctx context.Context, o objectDef, fields map[string]any, since time.Time, claimed map[string]bool) ([]map[string]any, error) {
	from := since.Add(-createMargin)
	q := url.Values{"attributes": {"all"}, "items_per_page": {strconv.Itoa(maxItemsPerPage)},
		"updated_or_created_since": {stamp(from)}}
	if o.sortable {
		q.Set("sort", "updated_at:asc")
	}
	var found []map[string]any
	seen := map[string]bool{}
	for next := "/" + o.path + "?" + q.Encode(); next != ""; {
		var env envelope
		if err := k.getRetry(ctx, next, &env); err != nil {
			return nil, err
		}
		next = ""
		if env.Next != nil {
			next = *env.Next
		}
		for _, raw := range env.Items {
			var rec map[string]any
			if json.Unmarshal(raw, &rec) != nil {
				continue
			}
			id, _ := rec["id"].(string)
			if id == "" || claimed[id] || seen[id] {
				continue
			}
			seen[id] = true
			if at, err := time.Parse(time.RFC3339, fmt.Sprint(rec["created_at"])); err == nil && at.Before(from.Truncate(time.Second)) {
				continue
			}
			if sameCreate(o, fields, o.flatten(rec)) {
				found = append(found, rec)
			}
		}
	}
	return found, nil
}

// sameCreate reports whether got (a record read back, flattened) is what a
// create of sent would make, on the fields that identify it.
func sameCreate(o objectDef, sent, got map[string]any) bool {
	same := func(names ...string) bool {
		for _, n := range names {
			if !sameValue(sent[n], got[n]) {
				return false
			}
		}
		return true
	}
	switch o.name {
	case "contacts":
		if !isEmpty(sent["reference"]) {
			return same("reference")
		}
		return same("name") && (isEmpty(sent["email"]) || same("email"))
	case "products":
		if !isEmpty(sent["item_code"]) {
			return same("item_code")
		}
		return same("description", "sales_ledger_account_id", "purchase_ledger_account_id")
	case "sales_invoices":
		if !same("contact_id", "date", "reference") {
			return false
		}
		sl, _ := sent["invoice_lines"].([]any)
		gl, _ := got["invoice_lines"].([]any)
		if len(sl) != len(gl) {
			return false
		}
		for i := range sl {
			s, _ := sl[i].(map[string]any)
			g, _ := gl[i].(map[string]any)
			if s == nil || g == nil || !sameValue(s["description"], g["description"]) || !sameValue(s["unit_price"], g["unit_price"]) {
				return false
			}
			q := s["quantity"]
			if isEmpty(q) {
				q = 1.0
			}
			if !sameValue(q, g["quantity"]) {
				return false
			}
		}
		return true
	}
	return false
}

func isEmpty(v any) bool {
	s, isStr := v.(string)
	return v == nil || (isStr && strings.TrimSpace(s) == "")
}

// sameValue compares a value sent with one read back: numbers by value
// (Sage may answer "10.0" for 10), strings trimmed and case-insensitive,
// empty and absent alike.
func sameValue(a, b any) bool {
	if isEmpty(a) || isEmpty(b) {
		return isEmpty(a) && isEmpty(b)
	}
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && math.Abs(x-y) < 1e-6
	}
	return strings.EqualFold(strings.TrimSpace(fmt.Sprint(a)), strings.TrimSpace(fmt.Sprint(b)))
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// pendingKey identifies a create: the business, object and body.
func (k *call) pendingKey(o objectDef, body map[string]any) string {
	raw, _ := json.Marshal(body) // map keys sorted: canonical
	sum := sha256.Sum256([]byte(k.cfg.BusinessID + "\x00" + o.name + "\x00" + string(raw)))
	return hex.EncodeToString(sum[:])
}

// rememberCreate notes a create whose outcome is unknown, sent at since.
func (c *Connector) rememberCreate(key string, since time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	for k, at := range c.pending {
		if now.Sub(at) > pendingTTL {
			delete(c.pending, k)
		}
	}
	if _, ok := c.pending[key]; !ok {
		c.pending[key] = since // the earliest attempt bounds the search
	}
}

// pendingCreate returns when an earlier create of key, whose outcome is
// unknown, was sent.
func (c *Connector) pendingCreate(key string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.pending[key]
	if ok && c.opts.Now().Sub(at) > pendingTTL {
		delete(c.pending, key)
		return time.Time{}, false
	}
	return at, ok
}

func (c *Connector) settleCreate(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, key)
}

// lookup finds the id of the record whose natural key equals key ("" when
// none), with Sage's search parameter.
func (k *call) lookup(ctx context.Context, o objectDef, key string) (string, error) {
	q := url.Values{"search": {key}, "attributes": {o.naturalKey}, "items_per_page": {"200"}}
	next := "/" + o.path + "?" + q.Encode()
	for next != "" {
		var env envelope
		if err := k.do(ctx, http.MethodGet, next, nil, &env); err != nil {
			return "", fmt.Errorf("look up %s %q: %w", o.naturalKey, key, err)
		}
		for _, raw := range env.Items {
			var rec map[string]any
			if json.Unmarshal(raw, &rec) == nil && rec[o.naturalKey] == key {
				id, _ := rec["id"].(string)
				return id, nil
			}
		}
		next = ""
		if env.Next != nil {
			next = *env.Next
		}
	}
	return "", nil
}
