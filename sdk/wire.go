package sdk

// Conversions between the plain-Go types of this package and the generated
// protobuf types of proto/connector/v1. They live in package sdk (unexported)
// rather than in an internal package because they need the public types, and
// package sdk needs them for Serve and Client: an internal package importing
// sdk could not be imported back by sdk.
//
// Conventions on the wire:
//   - time.Time travels as Unix microseconds; 0 means "unknown" and maps to the
//     zero time.Time (so the instant 1970-01-01T00:00:00Z itself cannot travel).
//     Times come back in UTC, truncated to the microsecond.
//   - json.RawMessage and []byte travel as bytes; an empty value comes back nil.
//   - Enums map value by value; unknown values map to the unspecified value (0).

import (
	"encoding/json"
	"time"

	connectorv1 "github.com/synchron-io/synchron/proto/connector/v1"
)

// timeToMicros converts t to Unix microseconds, 0 for the zero time.
func timeToMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// timeFromMicros converts Unix microseconds to a UTC time, the zero time for 0.
func timeFromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// rawFromBytes returns b as a RawMessage, nil when empty.
func rawFromBytes(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

// bytesOrNil returns b, nil when empty.
func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func severityToProto(s Severity) connectorv1.Diagnostic_Severity {
	switch s {
	case SeverityError:
		return connectorv1.Diagnostic_SEVERITY_ERROR
	case SeverityWarning:
		return connectorv1.Diagnostic_SEVERITY_WARNING
	}
	return connectorv1.Diagnostic_SEVERITY_UNSPECIFIED
}

func severityFromProto(s connectorv1.Diagnostic_Severity) Severity {
	switch s {
	case connectorv1.Diagnostic_SEVERITY_ERROR:
		return SeverityError
	case connectorv1.Diagnostic_SEVERITY_WARNING:
		return SeverityWarning
	}
	return 0
}

func writeStatusToProto(s WriteStatus) connectorv1.WriteResult_Status {
	switch s {
	case WriteOK:
		return connectorv1.WriteResult_STATUS_OK
	case WriteRetryable:
		return connectorv1.WriteResult_STATUS_RETRYABLE
	case WriteRejected:
		return connectorv1.WriteResult_STATUS_REJECTED
	}
	return connectorv1.WriteResult_STATUS_UNSPECIFIED
}

func writeStatusFromProto(s connectorv1.WriteResult_Status) WriteStatus {
	switch s {
	case connectorv1.WriteResult_STATUS_OK:
		return WriteOK
	case connectorv1.WriteResult_STATUS_RETRYABLE:
		return WriteRetryable
	case connectorv1.WriteResult_STATUS_REJECTED:
		return WriteRejected
	}
	return 0
}

func writeActionToProto(a WriteAction) connectorv1.WriteResult_Action {
	switch a {
	case ActionCreated:
		return connectorv1.WriteResult_ACTION_CREATED
	case ActionUpdated:
		return connectorv1.WriteResult_ACTION_UPDATED
	case ActionUnchanged:
		return connectorv1.WriteResult_ACTION_UNCHANGED
	case ActionDeleted:
		return connectorv1.WriteResult_ACTION_DELETED
	}
	return connectorv1.WriteResult_ACTION_UNSPECIFIED
}

func writeActionFromProto(a connectorv1.WriteResult_Action) WriteAction {
	switch a {
	case connectorv1.WriteResult_ACTION_CREATED:
		return ActionCreated
	case connectorv1.WriteResult_ACTION_UPDATED:
		return ActionUpdated
	case connectorv1.WriteResult_ACTION_UNCHANGED:
		return ActionUnchanged
	case connectorv1.WriteResult_ACTION_DELETED:
		return ActionDeleted
	}
	return 0
}

func diagnosticsToProto(d Diagnostics) []*connectorv1.Diagnostic {
	if len(d) == 0 {
		return nil
	}
	out := make([]*connectorv1.Diagnostic, len(d))
	for i, x := range d {
		out[i] = &connectorv1.Diagnostic{
			Severity:  severityToProto(x.Severity),
			Summary:   x.Summary,
			Detail:    x.Detail,
			Attribute: x.Attribute,
		}
	}
	return out
}

func diagnosticsFromProto(d []*connectorv1.Diagnostic) Diagnostics {
	if len(d) == 0 {
		return nil
	}
	out := make(Diagnostics, len(d))
	for i, x := range d {
		out[i] = Diagnostic{
			Severity:  severityFromProto(x.GetSeverity()),
			Summary:   x.GetSummary(),
			Detail:    x.GetDetail(),
			Attribute: x.GetAttribute(),
		}
	}
	return out
}

func fieldsToProto(fs []Field) []*connectorv1.Field {
	if len(fs) == 0 {
		return nil
	}
	out := make([]*connectorv1.Field, len(fs))
	for i, f := range fs {
		out[i] = &connectorv1.Field{
			Name:        f.Name,
			Type:        f.Type,
			Required:    f.Required,
			ReadOnly:    f.ReadOnly,
			Description: f.Description,
		}
	}
	return out
}

func fieldsFromProto(fs []*connectorv1.Field) []Field {
	if len(fs) == 0 {
		return nil
	}
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = Field{
			Name:        f.GetName(),
			Type:        f.GetType(),
			Required:    f.GetRequired(),
			ReadOnly:    f.GetReadOnly(),
			Description: f.GetDescription(),
		}
	}
	return out
}

func objectsToProto(objs []Object) []*connectorv1.ObjectSpec {
	if len(objs) == 0 {
		return nil
	}
	out := make([]*connectorv1.ObjectSpec, len(objs))
	for i, o := range objs {
		out[i] = &connectorv1.ObjectSpec{
			Name:        o.Name,
			Description: o.Description,
			Fields:      fieldsToProto(o.Fields),
			IdField:     o.IDField,
			Readable:    o.Readable,
			Writable:    o.Writable,
			Incremental: o.Incremental,
			Deletes:     o.Deletes,
			UpsertKey:   o.UpsertKey,
		}
	}
	return out
}

func objectsFromProto(objs []*connectorv1.ObjectSpec) []Object {
	if len(objs) == 0 {
		return nil
	}
	out := make([]Object, len(objs))
	for i, o := range objs {
		out[i] = Object{
			Name:        o.GetName(),
			Description: o.GetDescription(),
			Fields:      fieldsFromProto(o.GetFields()),
			IDField:     o.GetIdField(),
			Readable:    o.GetReadable(),
			Writable:    o.GetWritable(),
			Incremental: o.GetIncremental(),
			Deletes:     o.GetDeletes(),
			UpsertKey:   o.GetUpsertKey(),
		}
	}
	return out
}

func specToProto(s *Spec) *connectorv1.SpecResponse {
	if s == nil {
		return &connectorv1.SpecResponse{}
	}
	return &connectorv1.SpecResponse{
		Name:         s.Name,
		Version:      s.Version,
		Title:        s.Title,
		ConfigSchema: s.ConfigSchema,
		Objects:      objectsToProto(s.Objects),
		Capabilities: &connectorv1.Capabilities{
			Read:     s.Capabilities.Read,
			Write:    s.Capabilities.Write,
			Webhooks: s.Capabilities.Webhooks,
			Discover: s.Capabilities.Discover,
		},
		Docs:            s.Docs,
		ProtocolVersion: s.ProtocolVersion,
	}
}

func specFromProto(s *connectorv1.SpecResponse) *Spec {
	c := s.GetCapabilities()
	return &Spec{
		Name:         s.GetName(),
		Version:      s.GetVersion(),
		Title:        s.GetTitle(),
		ConfigSchema: rawFromBytes(s.GetConfigSchema()),
		Objects:      objectsFromProto(s.GetObjects()),
		Capabilities: Capabilities{
			Read:     c.GetRead(),
			Write:    c.GetWrite(),
			Webhooks: c.GetWebhooks(),
			Discover: c.GetDiscover(),
		},
		Docs:            s.GetDocs(),
		ProtocolVersion: s.GetProtocolVersion(),
	}
}

func checkRequestToProto(r CheckRequest) *connectorv1.CheckRequest {
	return &connectorv1.CheckRequest{Config: r.Config}
}

func checkRequestFromProto(r *connectorv1.CheckRequest) CheckRequest {
	return CheckRequest{Config: rawFromBytes(r.GetConfig())}
}

func checkResponseToProto(r *CheckResponse) *connectorv1.CheckResponse {
	if r == nil {
		return &connectorv1.CheckResponse{}
	}
	return &connectorv1.CheckResponse{
		Diagnostics:   diagnosticsToProto(r.Diagnostics),
		UpdatedConfig: r.UpdatedConfig,
	}
}

func checkResponseFromProto(r *connectorv1.CheckResponse) *CheckResponse {
	return &CheckResponse{
		Diagnostics:   diagnosticsFromProto(r.GetDiagnostics()),
		UpdatedConfig: rawFromBytes(r.GetUpdatedConfig()),
	}
}

func discoverRequestToProto(r DiscoverRequest) *connectorv1.DiscoverRequest {
	return &connectorv1.DiscoverRequest{Config: r.Config}
}

func discoverRequestFromProto(r *connectorv1.DiscoverRequest) DiscoverRequest {
	return DiscoverRequest{Config: rawFromBytes(r.GetConfig())}
}

func discoverResponseToProto(r *DiscoverResponse) *connectorv1.DiscoverResponse {
	if r == nil {
		return &connectorv1.DiscoverResponse{}
	}
	return &connectorv1.DiscoverResponse{
		Objects:       objectsToProto(r.Objects),
		Diagnostics:   diagnosticsToProto(r.Diagnostics),
		UpdatedConfig: r.UpdatedConfig,
	}
}

func discoverResponseFromProto(r *connectorv1.DiscoverResponse) *DiscoverResponse {
	return &DiscoverResponse{
		Objects:       objectsFromProto(r.GetObjects()),
		Diagnostics:   diagnosticsFromProto(r.GetDiagnostics()),
		UpdatedConfig: rawFromBytes(r.GetUpdatedConfig()),
	}
}

func recordToProto(r *Record) *connectorv1.Record {
	if r == nil {
		return nil
	}
	return &connectorv1.Record{
		Id:          r.ID,
		UpdatedAtUs: timeToMicros(r.UpdatedAt),
		Fields:      r.Fields,
		Deleted:     r.Deleted,
	}
}

func recordFromProto(r *connectorv1.Record) *Record {
	if r == nil {
		return nil
	}
	return &Record{
		ID:        r.GetId(),
		UpdatedAt: timeFromMicros(r.GetUpdatedAtUs()),
		Fields:    rawFromBytes(r.GetFields()),
		Deleted:   r.GetDeleted(),
	}
}

func readRequestToProto(r ReadRequest) *connectorv1.ReadRequest {
	bs := r.BatchSize
	if bs < 0 {
		bs = 0
	}
	return &connectorv1.ReadRequest{
		Config:    r.Config,
		Object:    r.Object,
		Cursor:    r.Cursor,
		BatchSize: uint32(min(bs, 1<<31-1)),
	}
}

func readRequestFromProto(r *connectorv1.ReadRequest) ReadRequest {
	return ReadRequest{
		Config:    rawFromBytes(r.GetConfig()),
		Object:    r.GetObject(),
		Cursor:    bytesOrNil(r.GetCursor()),
		BatchSize: int(min(r.GetBatchSize(), 1<<31-1)),
	}
}

// readBatchToProto converts a batch; the records are allocated in one block
// because a batch may hold thousands of them.
func readBatchToProto(b ReadBatch) *connectorv1.ReadResponse {
	resp := &connectorv1.ReadResponse{
		Checkpoint:    b.Checkpoint,
		Diagnostics:   diagnosticsToProto(b.Diagnostics),
		UpdatedConfig: b.UpdatedConfig,
	}
	if n := len(b.Records); n > 0 {
		block := make([]connectorv1.Record, n)
		resp.Records = make([]*connectorv1.Record, n)
		for i := range b.Records {
			r := &b.Records[i]
			p := &block[i]
			p.Id = r.ID
			p.UpdatedAtUs = timeToMicros(r.UpdatedAt)
			p.Fields = r.Fields
			p.Deleted = r.Deleted
			resp.Records[i] = p
		}
	}
	return resp
}

func readBatchFromProto(r *connectorv1.ReadResponse) ReadBatch {
	b := ReadBatch{
		Checkpoint:    bytesOrNil(r.GetCheckpoint()),
		Diagnostics:   diagnosticsFromProto(r.GetDiagnostics()),
		UpdatedConfig: rawFromBytes(r.GetUpdatedConfig()),
	}
	if recs := r.GetRecords(); len(recs) > 0 {
		b.Records = make([]Record, len(recs))
		for i, x := range recs {
			b.Records[i] = Record{
				ID:        x.GetId(),
				UpdatedAt: timeFromMicros(x.GetUpdatedAtUs()),
				Fields:    rawFromBytes(x.GetFields()),
				Deleted:   x.GetDeleted(),
			}
		}
	}
	return b
}

func writeRequestToProto(r WriteRequest) *connectorv1.WriteRequest {
	out := &connectorv1.WriteRequest{Config: r.Config, Object: r.Object}
	if n := len(r.Records); n > 0 {
		block := make([]connectorv1.WriteRecord, n)
		out.Records = make([]*connectorv1.WriteRecord, n)
		for i := range r.Records {
			w := &r.Records[i]
			p := &block[i]
			p.Ref = w.Ref
			p.Id = w.ID
			p.Fields = w.Fields
			p.Delete = w.Delete
			p.MayExistSinceUs = timeToMicros(w.MayExistSince)
			out.Records[i] = p
		}
	}
	return out
}

func writeRequestFromProto(r *connectorv1.WriteRequest) WriteRequest {
	out := WriteRequest{Config: rawFromBytes(r.GetConfig()), Object: r.GetObject()}
	if recs := r.GetRecords(); len(recs) > 0 {
		out.Records = make([]WriteRecord, len(recs))
		for i, x := range recs {
			out.Records[i] = WriteRecord{
				Ref:           x.GetRef(),
				ID:            x.GetId(),
				Fields:        rawFromBytes(x.GetFields()),
				Delete:        x.GetDelete(),
				MayExistSince: timeFromMicros(x.GetMayExistSinceUs()),
			}
		}
	}
	return out
}

func writeResponseToProto(r *WriteResponse) *connectorv1.WriteResponse {
	if r == nil {
		return &connectorv1.WriteResponse{}
	}
	out := &connectorv1.WriteResponse{
		Diagnostics:   diagnosticsToProto(r.Diagnostics),
		UpdatedConfig: r.UpdatedConfig,
	}
	if n := len(r.Results); n > 0 {
		block := make([]connectorv1.WriteResult, n)
		out.Results = make([]*connectorv1.WriteResult, n)
		for i := range r.Results {
			x := &r.Results[i]
			p := &block[i]
			p.Ref = x.Ref
			p.Status = writeStatusToProto(x.Status)
			p.Action = writeActionToProto(x.Action)
			p.Id = x.ID
			p.RetryAfterMs = x.RetryAfter.Milliseconds()
			p.Message = x.Message
			p.Fields = x.Fields
			out.Results[i] = p
		}
	}
	return out
}

func writeResponseFromProto(r *connectorv1.WriteResponse) *WriteResponse {
	out := &WriteResponse{
		Diagnostics:   diagnosticsFromProto(r.GetDiagnostics()),
		UpdatedConfig: rawFromBytes(r.GetUpdatedConfig()),
	}
	if res := r.GetResults(); len(res) > 0 {
		out.Results = make([]WriteResult, len(res))
		for i, x := range res {
			out.Results[i] = WriteResult{
				Ref:        x.GetRef(),
				Status:     writeStatusFromProto(x.GetStatus()),
				Action:     writeActionFromProto(x.GetAction()),
				ID:         x.GetId(),
				RetryAfter: time.Duration(x.GetRetryAfterMs()) * time.Millisecond,
				Message:    x.GetMessage(),
				Fields:     rawFromBytes(x.GetFields()),
			}
		}
	}
	return out
}

func webhookRequestToProto(r WebhookRequest) *connectorv1.HandleWebhookRequest {
	out := &connectorv1.HandleWebhookRequest{
		Config: r.Config,
		Method: r.Method,
		Path:   r.Path,
		Body:   r.Body,
	}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]*connectorv1.HeaderValues, len(r.Headers))
		for k, v := range r.Headers {
			out.Headers[k] = &connectorv1.HeaderValues{Values: v}
		}
	}
	return out
}

func webhookRequestFromProto(r *connectorv1.HandleWebhookRequest) WebhookRequest {
	out := WebhookRequest{
		Config: rawFromBytes(r.GetConfig()),
		Method: r.GetMethod(),
		Path:   r.GetPath(),
		Body:   bytesOrNil(r.GetBody()),
	}
	if h := r.GetHeaders(); len(h) > 0 {
		out.Headers = make(map[string][]string, len(h))
		for k, v := range h {
			out.Headers[k] = v.GetValues()
		}
	}
	return out
}

func webhookResponseToProto(r *WebhookResponse) *connectorv1.HandleWebhookResponse {
	if r == nil {
		return &connectorv1.HandleWebhookResponse{}
	}
	out := &connectorv1.HandleWebhookResponse{
		Verified:       r.Verified,
		Diagnostics:    diagnosticsToProto(r.Diagnostics),
		ResponseStatus: int32(min(max(r.ResponseStatus, 0), 999)),
		ResponseBody:   r.ResponseBody,
		DeliveryId:     r.DeliveryID,
	}
	if len(r.Changes) > 0 {
		out.Changes = make([]*connectorv1.ChangeNotice, len(r.Changes))
		for i, c := range r.Changes {
			out.Changes[i] = &connectorv1.ChangeNotice{
				Object:  c.Object,
				Id:      c.ID,
				Deleted: c.Deleted,
				Record:  recordToProto(c.Record),
			}
		}
	}
	return out
}

func webhookResponseFromProto(r *connectorv1.HandleWebhookResponse) *WebhookResponse {
	out := &WebhookResponse{
		Verified:       r.GetVerified(),
		Diagnostics:    diagnosticsFromProto(r.GetDiagnostics()),
		ResponseStatus: int(r.GetResponseStatus()),
		ResponseBody:   bytesOrNil(r.GetResponseBody()),
		DeliveryID:     r.GetDeliveryId(),
	}
	if ch := r.GetChanges(); len(ch) > 0 {
		out.Changes = make([]ChangeNotice, len(ch))
		for i, c := range ch {
			out.Changes[i] = ChangeNotice{
				Object:  c.GetObject(),
				ID:      c.GetId(),
				Deleted: c.GetDeleted(),
				Record:  recordFromProto(c.GetRecord()),
			}
		}
	}
	return out
}
