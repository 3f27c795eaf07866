package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk"
)

// maxIntervalSeconds bounds a refresh interval: 30 days.
const maxIntervalSeconds = 30 * 24 * 3600

type endpointInput struct {
	ConnectionID string `json:"connection_id"`
	Object       string `json:"object"`
}

// workflowRequest is the body of POST and PATCH /v1/workflows; absent fields
// keep their value (PATCH) or take their default (POST).
type workflowRequest struct {
	Name      *string         `json:"name"`
	Source    *endpointInput  `json:"source"`
	Target    *endpointInput  `json:"target"`
	Direction *string         `json:"direction"`
	Mapping   json.RawMessage `json:"mapping"`
	Match     json.RawMessage `json:"match"`
	Conflict  *string         `json:"conflict"`
	Deletes   *string         `json:"deletes"`
	WriteBack json.RawMessage `json:"write_back"`
	Filter    json.RawMessage `json:"filter"`
	// DeleteThresholdPct is a percentage, 0 to 100.
	DeleteThresholdPct *float64 `json:"delete_threshold_pct"`
	IntervalSeconds    *int     `json:"interval_seconds"`
	Shared             *bool    `json:"shared"`
}

type writeBackSpec struct {
	Field string `json:"field"`
}

// side is one end of a workflow, resolved: its connection, app and object.
type side struct {
	conn    store.Connection
	app     connectors.App
	object  sdk.Object
	objects []sdk.Object // every object of the connection, for lookups
}

func (s *server) getWF(c *gin.Context, id string) (store.Workflow, error) {
	w, err := s.store.GetWorkflow(c.Request.Context(), principal(c).Account.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Workflow{}, notFound("workflow", id)
	}
	return w, err
}

// objects lists the objects a connection reaches: Discover with its config
// when the connector supports it, else the objects of its spec.
func (s *server) objects(ctx context.Context, role string, conn store.Connection, app connectors.App) ([]sdk.Object, error) {
	if !app.Spec.Capabilities.Discover {
		return app.Spec.Objects, nil
	}
	config, err := s.openConfig(conn)
	if err != nil {
		return nil, err
	}
	lease, err := s.registry.Acquire(ctx, conn.App)
	if errors.Is(err, connectors.ErrUnknownApp) {
		return nil, appGone(conn.App)
	}
	if err != nil {
		s.log.Warn("acquire connector", "app", conn.App, "error", err)
		return nil, connectorUnavailable(conn.App)
	}
	defer lease.Release()
	cctx, cancel := context.WithTimeout(ctx, connectorTimeout)
	defer cancel()
	resp, err := lease.Discover(cctx, sdk.DiscoverRequest{Config: config})
	if err != nil {
		s.log.Warn("connector discover", "app", conn.App, "version", lease.Version, "error", err)
		return nil, connectorUnavailable(conn.App)
	}
	if updated := bytes.TrimSpace(resp.UpdatedConfig); len(updated) > 0 && updated[0] == '{' && json.Valid(updated) {
		// Refreshed credentials are saved at once (a rotated refresh
		// token works only once).
		sealed, err := s.box.Seal(updated, store.ConnectionAAD(conn.ID))
		if err != nil {
			return nil, err
		}
		if err := s.store.SaveRefreshedConfig(ctx, conn.AccountID, conn.ID, sealed); err != nil {
			return nil, err
		}
	}
	if resp.Diagnostics.HasError() {
		return nil, invalid("connection_error", "%s connection %q cannot list its objects: %s (fix it, then POST /v1/connections/%s/check)",
			role, conn.ID, resp.Diagnostics.Error(), conn.ID)
	}
	return resp.Objects, nil
}

// resolve finds a workflow end: the connection (of this account), its app
// and the object.
func (s *server) resolve(ctx context.Context, accountID, role string, ep endpointInput) (side, error) {
	if ep.ConnectionID == "" {
		return side{}, invalid("invalid_"+role, "%s.connection_id is required", role)
	}
	if ep.Object == "" {
		return side{}, invalid("invalid_"+role, "%s.object is required", role)
	}
	conn, err := s.store.GetConnection(ctx, accountID, ep.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		return side{}, invalid("invalid_"+role, "%s connection %q not found", role, ep.ConnectionID)
	}
	if err != nil {
		return side{}, err
	}
	app, err := s.registry.App(ctx, conn.App)
	if errors.Is(err, connectors.ErrUnknownApp) {
		return side{}, appGone(conn.App)
	}
	if err != nil {
		return side{}, fmt.Errorf("registry: app %s: %w", conn.App, err)
	}
	objs, err := s.objects(ctx, role, conn, app)
	if err != nil {
		return side{}, err
	}
	i := slices.IndexFunc(objs, func(o sdk.Object) bool { return o.Name == ep.Object })
	if i < 0 {
		names := make([]string, len(objs))
		for j, o := range objs {
			names[j] = o.Name
		}
		return side{}, invalid("invalid_"+role, "%s object %q does not exist in %s; available objects: %s",
			role, ep.Object, app.Name, strings.Join(names, ", "))
	}
	return side{conn: conn, app: app, object: objs[i], objects: objs}, nil
}

func oneOf(field, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	return invalid("invalid_"+field, "%s must be one of %s, not %q", field, strings.Join(allowed, ", "), value)
}

// isSet reports whether a raw JSON field was given with a value other than null.
func isSet(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && !bytes.Equal(t, []byte("null"))
}

func decodeStrict(raw json.RawMessage, field string, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return invalid("invalid_"+field, "%s is not valid: %s", field, strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// validateWorkflow checks the settings of w against the account's plan and,
// with objects, against the objects of both ends (which asks the connectors).
func (s *server) validateWorkflow(ctx context.Context, acc store.Account, w *store.Workflow, objects bool) error {
	if _, err := cleanName("name", w.Name); err != nil {
		return err
	}
	twoWay := w.Direction == store.DirectionTwoWay
	if !twoWay && w.Direction != store.DirectionOneWay {
		return invalid("invalid_direction", "direction must be one_way or two_way, not %q", w.Direction)
	}
	if err := oneOf("conflict", w.Conflict, store.ConflictSourceWins, store.ConflictTargetWins, store.ConflictNewestWins); err != nil {
		return err
	}
	if err := oneOf("deletes", w.Deletes, store.DeletesIgnore, store.DeletesPropagate, store.DeletesApprove); err != nil {
		return err
	}
	if w.DeleteThresholdPct < 0 || w.DeleteThresholdPct > 100 {
		return invalid("invalid_delete_threshold_pct", "delete_threshold_pct must be a percentage from 0 to 100, not %v", w.DeleteThresholdPct)
	}
	if twoWay && !isSet(w.Match) {
		return invalid("invalid_match", "match is required for two_way workflows: name the fields that identify the same record on both sides, such as {\"source\": \"email\", \"target\": \"email\"}")
	}
	plan, ok := store.PlanByName(acc.Plan)
	if !ok {
		return fmt.Errorf("account %s has unknown plan %q", acc.ID, acc.Plan)
	}
	if w.IntervalSeconds < plan.MinIntervalSeconds {
		return invalid("interval_too_short", "interval_seconds must be at least %d on the %s plan (got %d)",
			plan.MinIntervalSeconds, plan.Title, w.IntervalSeconds)
	}
	if w.IntervalSeconds > maxIntervalSeconds {
		return invalid("interval_too_long", "interval_seconds must be at most %d (30 days)", maxIntervalSeconds)
	}
	if !isSet(w.Mapping) {
		return invalid("invalid_mapping", "mapping is required: a list of rules such as {\"source\": \"email\", \"target\": \"email\"}")
	}
	if w.SourceConnectionID == w.TargetConnectionID && w.SourceObject == w.TargetObject {
		return invalid("invalid_target", "source and target are the same object of the same connection")
	}
	if !objects {
		return nil
	}

	src, err := s.resolve(ctx, acc.ID, "source", endpointInput{ConnectionID: w.SourceConnectionID, Object: w.SourceObject})
	if err != nil {
		return err
	}
	dst, err := s.resolve(ctx, acc.ID, "target", endpointInput{ConnectionID: w.TargetConnectionID, Object: w.TargetObject})
	if err != nil {
		return err
	}
	if !src.app.Spec.Capabilities.Read || !src.object.Readable {
		return invalid("invalid_source", "source object %q of %s cannot be read: pick another source", src.object.Name, src.app.Name)
	}
	if !dst.app.Spec.Capabilities.Write || !dst.object.Writable {
		return invalid("invalid_target", "target object %q of %s cannot be written: pick another target", dst.object.Name, dst.app.Name)
	}
	if twoWay && (!src.app.Spec.Capabilities.Write || !src.object.Writable) {
		return invalid("invalid_source", "a two_way workflow also writes to its source, and source object %q of %s cannot be written: pick a writable source or make the workflow one_way",
			src.object.Name, src.app.Name)
	}
	if twoWay && (!dst.app.Spec.Capabilities.Read || !dst.object.Readable) {
		return invalid("invalid_target", "a two_way workflow also reads its target, and target object %q of %s cannot be read: pick a readable target or make the workflow one_way",
			dst.object.Name, dst.app.Name)
	}

	key := dst.object.UpsertKey
	w.TargetUpsertKey = &key
	rules, err := mapping.Parse(w.Mapping)
	if err == nil && !twoWay {
		// Rules default to both ways: in a one-way workflow they flow only
		// to the target, so a read-only source field may be mapped.
		rules, err = mapping.OneWay(rules)
	}
	if err == nil {
		err = mapping.Validate(rules, src.object, dst.object)
	}
	if err == nil {
		err = mapping.ValidateLookups(rules, src.object, dst.objects)
	}
	if err != nil {
		return invalid("invalid_mapping", "%s", err.Error())
	}

	if isSet(w.Match) {
		m, err := mapping.ParseMatch(w.Match)
		if err == nil {
			err = m.Validate(src.object, dst.object)
		}
		if err != nil {
			return invalid("invalid_match", "%s", about("match", err))
		}
	}
	if isSet(w.Filter) {
		f, err := mapping.ParseFilter(w.Filter)
		if err == nil && f != nil {
			err = f.Validate(src.object, dst.object)
		}
		if err != nil {
			return invalid("invalid_filter", "%s", about("filter", err))
		}
	}
	if isSet(w.WriteBack) {
		var wb writeBackSpec
		if err := decodeStrict(w.WriteBack, "write_back", &wb); err != nil {
			return err
		}
		if wb.Field == "" {
			return invalid("invalid_write_back", "write_back.field is required: the source field that receives the target's id")
		}
		if !src.app.Spec.Capabilities.Write || !src.object.Writable {
			return invalid("invalid_write_back", "write_back needs a writable source, and object %q of %s cannot be written", src.object.Name, src.app.Name)
		}
		f, ok := src.object.Field(wb.Field)
		if !ok {
			return invalid("invalid_write_back", "write_back.field %q does not exist in %q", wb.Field, src.object.Name)
		}
		if f.ReadOnly {
			return invalid("invalid_write_back", "write_back.field %q of %q is read-only", wb.Field, src.object.Name)
		}
	}
	return nil
}

// about prefixes a validation message with the setting it is about, unless
// it already names it.
func about(field string, err error) string {
	msg := err.Error()
	if strings.Contains(msg, field) {
		return msg
	}
	return field + ": " + msg
}

// nullable turns an explicit JSON null into "not set".
func nullable(raw json.RawMessage) []byte {
	if !isSet(raw) {
		return nil
	}
	return compact(raw)
}

func (s *server) createWorkflow(c *gin.Context) error {
	var req workflowRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p := principal(c)
	if req.Source == nil {
		return invalid("invalid_source", "source is required: {\"connection_id\": \"con_...\", \"object\": \"...\"}")
	}
	if req.Target == nil {
		return invalid("invalid_target", "target is required: {\"connection_id\": \"con_...\", \"object\": \"...\"}")
	}
	plan, _ := store.PlanByName(p.Account.Plan)
	now := s.now()
	w := store.Workflow{
		AccountID: p.Account.ID, SourceConnectionID: req.Source.ConnectionID, SourceObject: req.Source.Object,
		TargetConnectionID: req.Target.ConnectionID, TargetObject: req.Target.Object,
		Direction: store.DirectionOneWay, Mapping: req.Mapping, Match: nullable(req.Match), Conflict: store.ConflictSourceWins,
		Deletes: store.DeletesIgnore, WriteBack: nullable(req.WriteBack), Filter: nullable(req.Filter),
		DeleteThresholdPct: store.DefaultDeleteThresholdPct, IntervalSeconds: plan.MinIntervalSeconds,
		Status: store.WorkflowActive, NextRunAt: &now, CreatedBy: p.User.ID,
	}
	if req.DeleteThresholdPct != nil {
		w.DeleteThresholdPct = *req.DeleteThresholdPct
	}
	if req.Name != nil {
		w.Name = strings.TrimSpace(*req.Name)
	}
	if req.Direction != nil {
		w.Direction = *req.Direction
	}
	if req.Conflict != nil {
		w.Conflict = *req.Conflict
	}
	if req.Deletes != nil {
		w.Deletes = *req.Deletes
	}
	if req.IntervalSeconds != nil {
		w.IntervalSeconds = *req.IntervalSeconds
	}
	if req.Shared != nil {
		w.Shared = *req.Shared
	}
	ctx := c.Request.Context()
	if err := s.validateWorkflow(ctx, p.Account, &w, true); err != nil {
		return err
	}
	w.Mapping = compact(w.Mapping)
	out, err := s.store.CreateWorkflow(ctx, w)
	if errors.Is(err, store.ErrNotFound) {
		return invalid("invalid_source", "a connection of this workflow was deleted meanwhile")
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, viewWorkflow(out))
	return nil
}

func (s *server) listWorkflows(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	ws, next, err := s.store.ListWorkflows(c.Request.Context(), principal(c).Account.ID, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(ws, viewWorkflow), next))
	return nil
}

func (s *server) getWorkflow(c *gin.Context) error {
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, viewWorkflow(w))
	return nil
}

func (s *server) updateWorkflow(c *gin.Context) error {
	var req workflowRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	if (req.Source != nil && *req.Source != (endpointInput{ConnectionID: w.SourceConnectionID, Object: w.SourceObject})) ||
		(req.Target != nil && *req.Target != (endpointInput{ConnectionID: w.TargetConnectionID, Object: w.TargetObject})) ||
		(req.Direction != nil && *req.Direction != w.Direction) {
		return invalid("immutable_field", "source, target and direction of a workflow cannot change: create a new workflow")
	}
	oldInterval := w.IntervalSeconds
	if req.Name != nil {
		w.Name = strings.TrimSpace(*req.Name)
	}
	if req.Mapping != nil {
		w.Mapping = req.Mapping
	}
	if req.Match != nil {
		w.Match = nullable(req.Match)
	}
	if req.Conflict != nil {
		w.Conflict = *req.Conflict
	}
	if req.Deletes != nil {
		w.Deletes = *req.Deletes
	}
	if req.WriteBack != nil {
		w.WriteBack = nullable(req.WriteBack)
	}
	if req.Filter != nil {
		w.Filter = nullable(req.Filter)
	}
	if req.DeleteThresholdPct != nil {
		w.DeleteThresholdPct = *req.DeleteThresholdPct
	}
	if req.IntervalSeconds != nil {
		w.IntervalSeconds = *req.IntervalSeconds
	}
	if req.Shared != nil {
		w.Shared = *req.Shared
	}
	p := principal(c)
	ctx := c.Request.Context()
	// Name, interval, sharing and policies do not depend on the objects: such
	// edits work even while a connector is down.
	objects := req.Mapping != nil || isSet(req.Match) || isSet(req.WriteBack) || isSet(req.Filter)
	if err := s.validateWorkflow(ctx, p.Account, &w, objects); err != nil {
		return err
	}
	w.Mapping = compact(w.Mapping)
	now := s.now()
	// The scheduler owns next_run_at: an edit only brings it forward, when a
	// shorter interval should take effect now rather than after the old one.
	w.NextRunAt = nil
	if w.IntervalSeconds < oldInterval {
		soon := now.Add(time.Duration(w.IntervalSeconds) * time.Second)
		w.NextRunAt = &soon
	}
	out, err := s.store.UpdateWorkflow(ctx, w, now)
	switch {
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, "workflow_changed", "the workflow changed while this request was made: read it again and retry")
	case errors.Is(err, store.ErrNotFound):
		return notFound("workflow", w.ID)
	case err != nil:
		return err
	}
	c.JSON(http.StatusOK, viewWorkflow(out))
	return nil
}

func (s *server) deleteWorkflow(c *gin.Context) error {
	id := c.Param("id")
	err := s.store.DeleteWorkflow(c.Request.Context(), principal(c).Account.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("workflow", id)
	}
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *server) setWorkflowStatus(c *gin.Context, status string) error {
	id := c.Param("id")
	var next *time.Time
	if status == store.WorkflowActive {
		// A resumed workflow catches up at once.
		now := s.now()
		next = &now
	}
	w, err := s.store.SetWorkflowStatus(c.Request.Context(), principal(c).Account.ID, id, status, next, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("workflow", id)
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, viewWorkflow(w))
	return nil
}

func (s *server) pauseWorkflow(c *gin.Context) error {
	return s.setWorkflowStatus(c, store.WorkflowPaused)
}
func (s *server) resumeWorkflow(c *gin.Context) error {
	return s.setWorkflowStatus(c, store.WorkflowActive)
}

func (s *server) runWorkflow(c *gin.Context) error {
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	if s.runner == nil {
		return runnerUnavailable()
	}
	ctx := c.Request.Context()
	runID, err := s.runner.Enqueue(ctx, w.AccountID, w.ID, store.TriggerManual)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("workflow", w.ID)
	}
	if err != nil {
		return fmt.Errorf("enqueue run of %s: %w", w.ID, err)
	}
	run, err := s.store.GetRun(ctx, w.AccountID, runID)
	if err != nil {
		return fmt.Errorf("enqueued run %s: %w", runID, err)
	}
	c.JSON(http.StatusAccepted, viewRun(run))
	return nil
}

func (s *server) listRuns(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	rs, next, err := s.store.ListRuns(c.Request.Context(), w.AccountID, w.ID, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(rs, viewRun), next))
	return nil
}

func (s *server) getRun(c *gin.Context) error {
	id := c.Param("id")
	r, err := s.store.GetRun(c.Request.Context(), principal(c).Account.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("run", id)
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, viewRun(r))
	return nil
}

func (s *server) listRunRecords(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	accountID := principal(c).Account.ID
	ctx := c.Request.Context()
	if _, err := s.store.GetRun(ctx, accountID, id); errors.Is(err, store.ErrNotFound) {
		return notFound("run", id)
	} else if err != nil {
		return err
	}
	rs, next, err := s.store.ListRunRecords(ctx, accountID, id, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(rs, viewRunRecord), next))
	return nil
}
