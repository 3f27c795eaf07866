package sage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
	for i, r := range req.Records {
		res := &resp.Results[i]
		err := k.writeOne(ctx, o, r, res)
		if err == nil {
			res.Status = sdk.WriteOK
			continue
		}
		var ae *apiError
		switch {
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

func (k *call) writeOne(ctx context.Context, o objectDef, r sdk.WriteRecord, res *sdk.WriteResult) error {
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
	if id == "" && o.naturalKey != "" {
		if key, ok := fields[o.naturalKey].(string); ok && key != "" {
			if id, err = k.lookup(ctx, o, key); err != nil {
				return err
			}
		}
	}
	var out map[string]any
	if id == "" {
		err = k.do(ctx, http.MethodPost, "/"+o.path, body, &out)
		res.Action = sdk.ActionCreated
	} else {
		err = k.do(ctx, http.MethodPut, "/"+o.path+"/"+url.PathEscape(id), body, &out)
		res.Action = sdk.ActionUpdated
	}
	if err != nil {
		return err
	}
	res.ID, _ = out["id"].(string)
	if res.ID == "" {
		res.ID = id
	}
	if raw, err := json.Marshal(o.flatten(out)); err == nil {
		res.Fields = raw
	}
	return nil
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
