package api

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk"
)

// The JSON shapes of answers. Times are RFC 3339 in UTC. No view carries a
// password hash, a token hash or a connection config.

func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

type userView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	IsPrimary bool      `json:"is_primary"`
	CreatedAt time.Time `json:"created_at"`
}

func viewUser(u store.User) userView {
	return userView{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, IsPrimary: u.IsPrimary, CreatedAt: utc(u.CreatedAt)}
}

type accountView struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Plan        string     `json:"plan"`
	Status      string     `json:"status"`
	TrialEndsAt *time.Time `json:"trial_ends_at"`
	CreatedAt   time.Time  `json:"created_at"`
}

func viewAccount(a store.Account) accountView {
	return accountView{ID: a.ID, Name: a.Name, Plan: a.Plan, Status: a.Status, TrialEndsAt: utcPtr(a.TrialEndsAt), CreatedAt: utc(a.CreatedAt)}
}

type tokenView struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	// Token is the secret, present only in the answer that creates it.
	Token string `json:"token,omitempty"`
}

func viewToken(t store.Token) tokenView {
	return tokenView{ID: t.ID, Kind: t.Kind, Name: t.Name, CreatedAt: utc(t.CreatedAt),
		LastUsedAt: utcPtr(t.LastUsedAt), ExpiresAt: utcPtr(t.ExpiresAt)}
}

type appView struct {
	Name            string           `json:"name"`
	Version         string           `json:"version"`
	Title           string           `json:"title"`
	Capabilities    sdk.Capabilities `json:"capabilities"`
	Objects         []sdk.Object     `json:"objects"`
	ConfigSchema    json.RawMessage  `json:"config_schema"`
	ProtocolVersion uint32           `json:"protocol_version"`
	DocsURL         string           `json:"docs_url"`
}

func viewApp(name, version string, spec sdk.Spec) appView {
	objs := spec.Objects
	if objs == nil {
		objs = []sdk.Object{}
	}
	schema := spec.ConfigSchema
	if len(schema) == 0 {
		schema = json.RawMessage(`{}`)
	}
	return appView{Name: name, Version: version, Title: spec.Title, Capabilities: spec.Capabilities, Objects: objs,
		ConfigSchema: schema, ProtocolVersion: spec.ProtocolVersion, DocsURL: "/v1/apps/" + name + "/docs"}
}

type connectionView struct {
	ID            string     `json:"id"`
	App           string     `json:"app"`
	Name          string     `json:"name"`
	Status        string     `json:"status"`
	StatusMessage string     `json:"status_message"`
	CheckedAt     *time.Time `json:"checked_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

func viewConnection(c store.Connection) connectionView {
	return connectionView{ID: c.ID, App: c.App, Name: c.Name, Status: c.Status, StatusMessage: c.StatusMessage,
		CheckedAt: utcPtr(c.CheckedAt), CreatedAt: utc(c.CreatedAt), UpdatedAt: utc(c.UpdatedAt)}
}

type diagnosticView struct {
	Severity  string `json:"severity"`
	Summary   string `json:"summary"`
	Detail    string `json:"detail,omitempty"`
	Attribute string `json:"attribute,omitempty"`
}

func viewDiagnostics(ds sdk.Diagnostics) []diagnosticView {
	out := make([]diagnosticView, len(ds))
	for i, d := range ds {
		out[i] = diagnosticView{Severity: d.Severity.String(), Summary: d.Summary, Detail: d.Detail, Attribute: d.Attribute}
	}
	return out
}

type endpointView struct {
	ConnectionID string `json:"connection_id"`
	Object       string `json:"object"`
}

type workflowView struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Source    endpointView    `json:"source"`
	Target    endpointView    `json:"target"`
	Direction string          `json:"direction"`
	Mapping   json.RawMessage `json:"mapping"`
	Match     json.RawMessage `json:"match"`
	Conflict  string          `json:"conflict"`
	Deletes   string          `json:"deletes"`
	WriteBack json.RawMessage `json:"write_back"`
	Filter    json.RawMessage `json:"filter"`
	// DeleteThresholdPct: a run that would delete more than this share of
	// the linked records deletes nothing and raises a notice.
	DeleteThresholdPct float64    `json:"delete_threshold_pct"`
	IntervalSeconds    int        `json:"interval_seconds"`
	Shared             bool       `json:"shared"`
	Status             string     `json:"status"`
	NextRunAt          *time.Time `json:"next_run_at"`
	CreatedBy          string     `json:"created_by"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
}

func rawOrNull(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return json.RawMessage(b)
}

func viewWorkflow(w store.Workflow) workflowView {
	return workflowView{
		ID: w.ID, Name: w.Name,
		Source:    endpointView{ConnectionID: w.SourceConnectionID, Object: w.SourceObject},
		Target:    endpointView{ConnectionID: w.TargetConnectionID, Object: w.TargetObject},
		Direction: w.Direction, Mapping: rawOrNull(w.Mapping), Match: rawOrNull(w.Match), Conflict: w.Conflict,
		Deletes: w.Deletes, WriteBack: rawOrNull(w.WriteBack), Filter: rawOrNull(w.Filter),
		DeleteThresholdPct: w.DeleteThresholdPct, IntervalSeconds: w.IntervalSeconds, Shared: w.Shared,
		Status: w.Status, NextRunAt: utcPtr(w.NextRunAt), CreatedBy: w.CreatedBy,
		CreatedAt: utc(w.CreatedAt), UpdatedAt: utc(w.UpdatedAt),
	}
}

type countsView struct {
	Read    int64 `json:"read"`
	Created int64 `json:"created"`
	Updated int64 `json:"updated"`
	Deleted int64 `json:"deleted"`
	Skipped int64 `json:"skipped"`
	Failed  int64 `json:"failed"`
	// Matched records were linked by the matching key; ambiguous ones were
	// left alone because the key matched several records.
	Matched   int64 `json:"matched"`
	Ambiguous int64 `json:"ambiguous"`
}

type runView struct {
	ID                string          `json:"id"`
	WorkflowID        string          `json:"workflow_id"`
	Status            string          `json:"status"`
	Trigger           string          `json:"trigger"`
	Counts            countsView      `json:"counts"`
	Notice            string          `json:"notice,omitempty"`
	Transactions      int64           `json:"transactions"`
	ConnectorVersions json.RawMessage `json:"connector_versions"`
	Error             string          `json:"error,omitempty"`
	Attempts          int             `json:"attempts"`
	CreatedAt         time.Time       `json:"created_at"`
	StartedAt         *time.Time      `json:"started_at"`
	FinishedAt        *time.Time      `json:"finished_at"`
}

func viewRun(r store.Run) runView {
	versions := r.ConnectorVersions
	if len(versions) == 0 {
		versions = json.RawMessage(`{}`)
	}
	return runView{
		ID: r.ID, WorkflowID: r.WorkflowID, Status: r.Status, Trigger: r.Trigger,
		Counts: countsView{Read: r.ReadCount, Created: r.CreatedCount, Updated: r.UpdatedCount,
			Deleted: r.DeletedCount, Skipped: r.SkippedCount, Failed: r.FailedCount,
			Matched: r.MatchedCount, Ambiguous: r.AmbiguousCount},
		Notice: r.Notice, Transactions: r.Transactions, ConnectorVersions: versions, Error: r.Error, Attempts: r.Attempts,
		CreatedAt: utc(r.CreatedAt), StartedAt: utcPtr(r.StartedAt), FinishedAt: utcPtr(r.FinishedAt),
	}
}

type runRecordView struct {
	ID        string    `json:"id"`
	RunID     string    `json:"run_id"`
	RecordID  string    `json:"record_id"`
	Direction string    `json:"direction"`
	Side      string    `json:"side"`
	LinkID    *string   `json:"link_id"`
	Status    string    `json:"status"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"created_at"`
}

func viewRunRecord(r store.RunRecord) runRecordView {
	return runRecordView{ID: strconv.FormatInt(r.ID, 10), RunID: r.RunID, RecordID: r.RecordID, Direction: r.Direction,
		Side: r.Side, LinkID: strOrNull(r.LinkID), Status: r.Status, Message: r.Message, CreatedAt: utc(r.CreatedAt)}
}

// strOrNull answers "" as null.
func strOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type pendingDeleteView struct {
	ID         string     `json:"id"`
	WorkflowID string     `json:"workflow_id"`
	LinkID     string     `json:"link_id"`
	Side       string     `json:"side"`
	RecordID   string     `json:"record_id"`
	Status     string     `json:"status"`
	Message    string     `json:"message"`
	CreatedAt  time.Time  `json:"created_at"`
	DecidedAt  *time.Time `json:"decided_at"`
}

func viewPendingDelete(d store.PendingDelete) pendingDeleteView {
	return pendingDeleteView{ID: d.ID, WorkflowID: d.WorkflowID, LinkID: d.LinkID, Side: d.Side, RecordID: d.RecordID,
		Status: d.Status, Message: d.Message, CreatedAt: utc(d.CreatedAt), DecidedAt: utcPtr(d.DecidedAt)}
}

// linkView is a linked pair of records. The hashes the engine keeps are
// not shown: they mean nothing to a user.
type linkView struct {
	ID               string          `json:"id"`
	WorkflowID       string          `json:"workflow_id"`
	SourceID         string          `json:"source_id"`
	TargetID         string          `json:"target_id"`
	SourceValues     json.RawMessage `json:"source_values"`
	TargetValues     json.RawMessage `json:"target_values"`
	SourceModifiedAt *time.Time      `json:"source_modified_at"`
	TargetModifiedAt *time.Time      `json:"target_modified_at"`
	SourceDeleted    bool            `json:"source_deleted"`
	TargetDeleted    bool            `json:"target_deleted"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
}

func rawOrEmpty(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage(`{}`)
	}
	return json.RawMessage(b)
}

func viewLink(l store.Link) linkView {
	return linkView{ID: l.ID, WorkflowID: l.WorkflowID, SourceID: l.SourceID, TargetID: l.TargetID,
		SourceValues: rawOrEmpty(l.SourceValues), TargetValues: rawOrEmpty(l.TargetValues),
		SourceModifiedAt: utcPtr(l.SourceModifiedAt), TargetModifiedAt: utcPtr(l.TargetModifiedAt),
		SourceDeleted: l.SourceDeleted, TargetDeleted: l.TargetDeleted, CreatedAt: utc(l.CreatedAt), UpdatedAt: utc(l.UpdatedAt)}
}

type linkEventView struct {
	ID        string          `json:"id"`
	RunID     *string         `json:"run_id"`
	Direction string          `json:"direction"`
	Action    string          `json:"action"`
	Values    json.RawMessage `json:"values"`
	Note      string          `json:"note"`
	CreatedAt time.Time       `json:"created_at"`
}

func viewLinkEvent(e store.LinkEvent) linkEventView {
	return linkEventView{ID: strconv.FormatInt(e.ID, 10), RunID: strOrNull(e.RunID), Direction: e.Direction, Action: e.Action,
		Values: rawOrEmpty(e.Values), Note: e.Note, CreatedAt: utc(e.CreatedAt)}
}

// linkDetailView is a link with one page of its history, newest first.
type linkDetailView struct {
	linkView
	History listBody[linkEventView] `json:"history"`
}

type notificationView struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Message    string     `json:"message"`
	WorkflowID *string    `json:"workflow_id"`
	Read       bool       `json:"read"`
	ReadAt     *time.Time `json:"read_at"`
	CreatedAt  time.Time  `json:"created_at"`
}

func viewNotification(n store.Notification) notificationView {
	return notificationView{ID: n.ID, Kind: n.Kind, Message: n.Message, WorkflowID: strOrNull(n.WorkflowID),
		Read: n.ReadAt != nil, ReadAt: utcPtr(n.ReadAt), CreatedAt: utc(n.CreatedAt)}
}

func mapSlice[T, V any](in []T, f func(T) V) []V {
	out := make([]V, len(in))
	for i, x := range in {
		out[i] = f(x)
	}
	return out
}
