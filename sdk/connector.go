// Package sdk is what a connector author imports: the Connector interface in
// plain Go types, Serve (the whole of a plugin's main), and the client the host
// uses to talk to a connector process. Generated protobuf types stay internal.
package sdk

import (
	"context"
	"encoding/json"
	"time"
)

// ProtocolVersion is the connector protocol version this SDK speaks. It is part
// of the go-plugin handshake: a host and a plugin with different versions refuse
// each other with a clear error instead of misbehaving.
const ProtocolVersion = 1

// Connector is implemented by every app connector. Credentials travel with
// each call (Config), so one instance serves every account. Problems with the
// app's data or the credentials are returned as Diagnostics in the responses;
// a returned error means the call itself failed (the host treats it as
// retryable).
type Connector interface {
	Spec(ctx context.Context) (*Spec, error)
	Check(ctx context.Context, req CheckRequest) (*CheckResponse, error)
	Discover(ctx context.Context, req DiscoverRequest) (*DiscoverResponse, error)
	// Read streams batches of records to sink, each with the checkpoint that
	// resumes right after it. It returns when the object has been read up to
	// now, when ctx is done, or when sink returns an error.
	Read(ctx context.Context, req ReadRequest, sink ReadSink) error
	// Write applies a batch and answers exactly one result per record, in the
	// same order, with the record's Ref.
	Write(ctx context.Context, req WriteRequest) (*WriteResponse, error)
	HandleWebhook(ctx context.Context, req WebhookRequest) (*WebhookResponse, error)
	// Stop finishes in-flight work and releases resources (pools, clients).
	Stop(ctx context.Context) error
}

// ReadSink receives the batches of a Read.
type ReadSink interface {
	// Emit sends one batch. checkpoint resumes right after the batch's last
	// record; nil means no new checkpoint. An error means the reader must stop.
	Emit(ctx context.Context, batch ReadBatch) error
}

// ReadSinkFunc adapts a function to ReadSink.
type ReadSinkFunc func(ctx context.Context, batch ReadBatch) error

// Emit calls f.
func (f ReadSinkFunc) Emit(ctx context.Context, batch ReadBatch) error { return f(ctx, batch) }

// Severity of a Diagnostic.
type Severity int

const (
	SeverityError Severity = iota + 1
	SeverityWarning
)

func (s Severity) String() string {
	switch s {
	case SeverityError:
		return "error"
	case SeverityWarning:
		return "warning"
	}
	return "unspecified"
}

// Diagnostic reports a problem with the config or the app's data.
type Diagnostic struct {
	Severity  Severity `json:"severity"`
	Summary   string   `json:"summary"`
	Detail    string   `json:"detail,omitempty"`
	Attribute string   `json:"attribute,omitempty"`
}

// Diagnostics is a list of Diagnostic.
type Diagnostics []Diagnostic

// HasError reports whether any diagnostic is an error.
func (d Diagnostics) HasError() bool {
	for _, x := range d {
		if x.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Error joins the error diagnostics into one message ("" when there are none).
func (d Diagnostics) Error() string {
	msg := ""
	for _, x := range d {
		if x.Severity != SeverityError {
			continue
		}
		if msg != "" {
			msg += "; "
		}
		msg += x.Summary
		if x.Attribute != "" {
			msg += " (" + x.Attribute + ")"
		}
		if x.Detail != "" {
			msg += ": " + x.Detail
		}
	}
	return msg
}

// Errorf builds an error diagnostic.
func Errorf(attribute, summary, detail string) Diagnostic {
	return Diagnostic{Severity: SeverityError, Summary: summary, Detail: detail, Attribute: attribute}
}

// Field types.
const (
	TypeString   = "string"
	TypeInteger  = "integer"
	TypeNumber   = "number"
	TypeBoolean  = "boolean"
	TypeDateTime = "datetime"
	TypeDate     = "date"
	TypeObject   = "object"
	TypeArray    = "array"
)

// FieldTypes lists the valid Field.Type values.
var FieldTypes = []string{TypeString, TypeInteger, TypeNumber, TypeBoolean, TypeDateTime, TypeDate, TypeObject, TypeArray}

// Field describes one field of an object.
type Field struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Required    bool   `json:"required,omitempty"`
	ReadOnly    bool   `json:"read_only,omitempty"`
	Description string `json:"description,omitempty"`
}

// Object describes one object type of the app (contacts, orders, a table...).
type Object struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Fields      []Field `json:"fields"`
	IDField     string  `json:"id_field,omitempty"`
	Readable    bool    `json:"readable"`
	Writable    bool    `json:"writable"`
	Incremental bool    `json:"incremental"`
	Deletes     bool    `json:"deletes"`
	// UpsertKey is the field by which a write without ID updates the record
	// that has its value instead of creating another (email, reference, a
	// primary key). Empty: a write without ID always creates; the host then
	// keeps links to the records it created (so that a changed source
	// record updates its target record instead of creating a new one).
	UpsertKey string `json:"upsert_key,omitempty"`
}

// Field returns the named field and whether it exists.
func (o Object) Field(name string) (Field, bool) {
	for _, f := range o.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Capabilities says which calls a connector supports.
type Capabilities struct {
	Read     bool `json:"read"`
	Write    bool `json:"write"`
	Webhooks bool `json:"webhooks"`
	Discover bool `json:"discover"`
}

// Spec describes a connector.
type Spec struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Title   string `json:"title"`
	// ConfigSchema is the JSON Schema of a connection's config.
	ConfigSchema    json.RawMessage `json:"config_schema"`
	Objects         []Object        `json:"objects"`
	Capabilities    Capabilities    `json:"capabilities"`
	Docs            string          `json:"-"`
	ProtocolVersion uint32          `json:"protocol_version"`
}

// Object returns the named object and whether it exists.
func (s Spec) Object(name string) (Object, bool) {
	for _, o := range s.Objects {
		if o.Name == name {
			return o, true
		}
	}
	return Object{}, false
}

// CheckRequest asks a connector to verify a config.
type CheckRequest struct {
	Config json.RawMessage
}

// CheckResponse answers a CheckRequest. No error diagnostics means the config works.
type CheckResponse struct {
	Diagnostics Diagnostics
	// UpdatedConfig is set when the connector refreshed credentials the host must save.
	UpdatedConfig json.RawMessage
}

// DiscoverRequest asks which objects and fields a config reaches.
type DiscoverRequest struct {
	Config json.RawMessage
}

// DiscoverResponse answers a DiscoverRequest.
type DiscoverResponse struct {
	Objects       []Object
	Diagnostics   Diagnostics
	UpdatedConfig json.RawMessage
}

// Record is one record read from an app.
type Record struct {
	ID string
	// UpdatedAt is the record's last change in the app (zero if unknown).
	UpdatedAt time.Time
	// Fields is the record as one JSON object.
	Fields  json.RawMessage
	Deleted bool
}

// ReadRequest starts a Read.
type ReadRequest struct {
	Config json.RawMessage
	Object string
	// Cursor is a checkpoint from an earlier read; nil reads from the start.
	Cursor []byte
	// BatchSize is the preferred number of records per batch (0: connector default).
	BatchSize int
}

// ReadBatch is one batch of a Read.
type ReadBatch struct {
	Records []Record
	// Checkpoint resumes right after this batch; nil if none.
	Checkpoint    []byte
	Diagnostics   Diagnostics
	UpdatedConfig json.RawMessage
}

// WriteRecord is one change to apply.
type WriteRecord struct {
	// Ref is chosen by the host and echoed in the result.
	Ref string
	// ID is the app's id; empty to create (or upsert by natural key).
	ID     string
	Fields json.RawMessage
	Delete bool
	// MayExistSince is set on a create (no ID) whose earlier attempt has an
	// unknown outcome: the host sent it and then died, or lost the answer.
	// The record may already exist in the app, created at or after this
	// time. A connector whose object has no natural key looks for it (by
	// the fields sent) before creating, and answers OK with its id when
	// exactly one matches, so that a record is never created twice.
	MayExistSince time.Time
}

// WriteRequest is one batch of changes.
type WriteRequest struct {
	Config  json.RawMessage
	Object  string
	Records []WriteRecord
}

// WriteStatus is the outcome of one record's write.
type WriteStatus int

const (
	WriteOK WriteStatus = iota + 1
	// WriteRetryable: a transient failure (429, 5xx, timeout); try again after RetryAfter.
	WriteRetryable
	// WriteRejected: the app refused the record; retrying the same data will not help.
	WriteRejected
)

func (s WriteStatus) String() string {
	switch s {
	case WriteOK:
		return "ok"
	case WriteRetryable:
		return "retryable"
	case WriteRejected:
		return "rejected"
	}
	return "unspecified"
}

// WriteAction says what an OK write did.
type WriteAction int

const (
	ActionCreated WriteAction = iota + 1
	ActionUpdated
	ActionUnchanged
	ActionDeleted
)

func (a WriteAction) String() string {
	switch a {
	case ActionCreated:
		return "created"
	case ActionUpdated:
		return "updated"
	case ActionUnchanged:
		return "unchanged"
	case ActionDeleted:
		return "deleted"
	}
	return "unspecified"
}

// WriteResult is the outcome of one WriteRecord.
type WriteResult struct {
	Ref        string
	Status     WriteStatus
	Action     WriteAction
	ID         string
	RetryAfter time.Duration
	Message    string
	// Fields is the record as the app stored it, when the app returns it.
	Fields json.RawMessage
}

// WriteResponse answers a WriteRequest: one result per record, in order.
type WriteResponse struct {
	Results       []WriteResult
	Diagnostics   Diagnostics
	UpdatedConfig json.RawMessage
}

// WebhookRequest is an incoming webhook as the host received it.
type WebhookRequest struct {
	Config  json.RawMessage
	Method  string
	Path    string
	Headers map[string][]string
	Body    []byte
}

// ChangeNotice is one change announced by a webhook.
type ChangeNotice struct {
	Object  string
	ID      string
	Deleted bool
	// Record is set when the webhook carries the full record.
	Record *Record
}

// WebhookResponse answers a WebhookRequest.
type WebhookResponse struct {
	// Verified is false when the signature did not check; the host answers 401.
	Verified    bool
	Changes     []ChangeNotice
	Diagnostics Diagnostics
	// ResponseStatus and ResponseBody are what the host answers the app (0: 200).
	ResponseStatus int
	ResponseBody   []byte
	// DeliveryID is the app's id of the delivery when it has one (Shopify's
	// X-Shopify-Webhook-Id). The host remembers the deliveries it processed
	// (in the database, so on every host) and drops a redelivery; a
	// delivery it failed to process is processed again when the app
	// retries it. Connectors do not dedup themselves.
	DeliveryID string
}
