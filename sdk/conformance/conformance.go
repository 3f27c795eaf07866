// Package conformance is the test kit every connector runs in its own tests.
// It owns the definition of a well-behaved connector as the host relies on
// it: a consistent Spec, Check answering with diagnostics, reads with unique
// ids, checkpoints that resume without loss or repetition, idempotent writes,
// and no leaked goroutines. Every check goes over a real gRPC connection
// (sdk.ServeTestConn), so the connector is tested the way the host uses it.
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Suite{
//			New:    func(t *testing.T) sdk.Connector { return myconn.New() },
//			Config: json.RawMessage(`{"api_key":"test"}`),
//			BadConfigs: map[string]json.RawMessage{
//				"wrong key": json.RawMessage(`{"api_key":"wrong"}`),
//			},
//			Object: "contacts",
//		})
//	}
//
// Run must not run in parallel with other tests of the same package: its leak
// check sees every goroutine of the process.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/synchron-io/synchron/sdk"
)

// Defaults of the optional Suite fields.
const (
	DefaultMinRecords    = 10
	DefaultReadBatchSize = 3
	DefaultWriteRecords  = 5
	DefaultTimeout       = time.Minute
)

// Suite describes the connector under test. New and Config are required;
// Object is required for the read and write checks.
type Suite struct {
	// New returns a fresh connector for one check. The kit serves it over a
	// real gRPC connection (sdk.ServeTestConn) and calls Stop on it when the
	// check ends; use t.Cleanup for anything else.
	New func(t *testing.T) sdk.Connector
	// Config is a working connection config: Check must accept it, and Read
	// and Write use it.
	Config json.RawMessage
	// BadConfigs are configs that Check must reject with at least one error
	// diagnostic (invalid values, wrong credentials, unknown keys...), by case
	// name. The kit always adds "invalid_json", a config that is not JSON.
	BadConfigs map[string]json.RawMessage
	// Object is the object the read and write checks use. It must be in the
	// Spec, or returned by Discover when the connector discovers its objects.
	Object string
	// Seed, if set, puts n records (n = MinRecords) in the source before the
	// checks run. When nil the kit assumes Config already reaches at least
	// MinRecords records of Object.
	Seed func(t *testing.T, n int)
	// MinRecords is the number of records the read checks expect at least
	// (default DefaultMinRecords).
	MinRecords int
	// ReadBatchSize is the small batch size read_resume uses so that a read
	// takes several batches (default DefaultReadBatchSize). It must be smaller
	// than MinRecords.
	ReadBatchSize int
	// NewRecord returns the fields (a JSON object) of the i-th record the write
	// check writes, for i in [0, WriteRecords). The record must carry the
	// object's natural key, so that writing it again updates rather than
	// duplicates. nil skips the write check, as does a Spec without
	// Capabilities.Write.
	NewRecord func(i int) json.RawMessage
	// WriteRecords is the number of records in the write check's batch
	// (default DefaultWriteRecords).
	WriteRecords int
	// Timeout bounds each check (default DefaultTimeout).
	Timeout time.Duration
	// LeakOptions are extra goleak options for goroutines that the
	// connector's libraries legitimately keep after Stop
	// (e.g. goleak.IgnoreTopFunction("some/pkg.(*pool).janitor")).
	LeakOptions []goleak.Option
}

// errStopRead is returned by the sink of read_resume to stop after the first
// checkpoint.
var errStopRead = errors.New("conformance: stop after the first checkpoint")

// maxReports caps the number of similar errors one check reports.
const maxReports = 10

// nameRE is what a connector name must look like.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// Run runs the conformance checks as subtests of t: spec, check, read_full,
// read_resume, write and leak. Each can fail on its own; read and write
// checks skip (with the reason) when the connector does not read or write.
func Run(t *testing.T, s Suite) {
	t.Helper()
	if s.New == nil {
		t.Fatal("conformance: Suite.New is required")
	}
	if len(s.Config) == 0 {
		t.Fatal("conformance: Suite.Config is required")
	}
	if s.MinRecords <= 0 {
		s.MinRecords = DefaultMinRecords
	}
	if s.ReadBatchSize <= 0 {
		s.ReadBatchSize = DefaultReadBatchSize
	}
	if s.ReadBatchSize >= s.MinRecords {
		t.Fatalf("conformance: Suite.ReadBatchSize (%d) must be smaller than MinRecords (%d) for reads to take several batches", s.ReadBatchSize, s.MinRecords)
	}
	if s.WriteRecords <= 0 {
		s.WriteRecords = DefaultWriteRecords
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Seed != nil {
		s.Seed(t, s.MinRecords)
	}
	// Taken after Seed: goroutines of the source itself (a test database's
	// pool) are not the connector's.
	ignore := goleak.IgnoreCurrent()
	k := &kit{s: s}

	t.Run("spec", k.checkSpec)
	t.Run("check", k.checkCheck)
	t.Run("read_full", k.checkReadFull)
	t.Run("read_resume", k.checkReadResume)
	t.Run("write", k.checkWrite)
	t.Run("leak", func(t *testing.T) {
		opts := append([]goleak.Option{ignore}, s.LeakOptions...)
		if err := goleak.Find(opts...); err != nil {
			t.Errorf("goroutines left running after every connector was stopped and its connection closed:\n%v", err)
		}
	})
}

type kit struct{ s Suite }

// connect returns a new connector served over gRPC, and a context bounded by
// the suite's timeout. Stop is called and the connection closed when t ends.
func (k *kit) connect(t *testing.T) (context.Context, sdk.Connector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), k.s.Timeout)
	t.Cleanup(cancel)
	impl := k.s.New(t)
	if impl == nil {
		t.Fatal("Suite.New returned nil")
	}
	c, closeConn, err := sdk.ServeTestConn(context.Background(), impl)
	if err != nil {
		t.Fatalf("serve the connector over gRPC: %v", err)
	}
	t.Cleanup(closeConn)
	t.Cleanup(func() { // runs before closeConn
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(stopCtx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return ctx, c
}

func (k *kit) spec(ctx context.Context, t *testing.T, c sdk.Connector) *sdk.Spec {
	t.Helper()
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	return spec
}

// object returns the suite's object from the spec, or from Discover when the
// connector discovers its objects.
func (k *kit) object(ctx context.Context, t *testing.T, c sdk.Connector, spec *sdk.Spec) sdk.Object {
	t.Helper()
	if k.s.Object == "" {
		t.Fatal("Suite.Object is required for this check")
	}
	if o, ok := spec.Object(k.s.Object); ok {
		return o
	}
	if spec.Capabilities.Discover {
		resp, err := c.Discover(ctx, sdk.DiscoverRequest{Config: k.s.Config})
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		if resp.Diagnostics.HasError() {
			t.Fatalf("Discover with Suite.Config: error diagnostics: %s", resp.Diagnostics.Error())
		}
		for _, o := range resp.Objects {
			if o.Name == k.s.Object {
				return o
			}
		}
		t.Fatalf("Suite.Object %q is neither in the spec nor discovered", k.s.Object)
	}
	t.Fatalf("Suite.Object %q is not in the spec", k.s.Object)
	return sdk.Object{}
}

func (k *kit) checkSpec(t *testing.T) {
	ctx, c := k.connect(t)
	spec := k.spec(ctx, t, c)

	if !nameRE.MatchString(spec.Name) {
		t.Errorf("Spec.Name %q: want a non-empty lowercase name matching %s", spec.Name, nameRE)
	}
	if _, ok := sdk.ParseVersion(spec.Version); !ok {
		t.Errorf("Spec.Version %q is not a semantic version (MAJOR.MINOR.PATCH, no leading v)", spec.Version)
	}
	if spec.ProtocolVersion != sdk.ProtocolVersion {
		t.Errorf("Spec.ProtocolVersion = %d, want sdk.ProtocolVersion (%d)", spec.ProtocolVersion, sdk.ProtocolVersion)
	}
	var schema map[string]json.RawMessage
	if err := json.Unmarshal(spec.ConfigSchema, &schema); err != nil {
		t.Errorf("Spec.ConfigSchema is not a JSON object: %v", err)
	} else {
		var typ string
		if err := json.Unmarshal(schema["type"], &typ); err != nil || typ != "object" {
			t.Errorf(`Spec.ConfigSchema: want "type": "object", got %s`, schema["type"])
		}
	}
	errs := objectErrors(spec.Objects)
	for i, e := range errs {
		if i == maxReports {
			t.Errorf("... and %d more object errors", len(errs)-maxReports)
			break
		}
		t.Error(e)
	}

	var readable, writable bool
	for _, o := range spec.Objects {
		readable = readable || o.Readable
		writable = writable || o.Writable
	}
	if readable && !spec.Capabilities.Read {
		t.Error("an object is readable but Spec.Capabilities.Read is false")
	}
	if writable && !spec.Capabilities.Write {
		t.Error("an object is writable but Spec.Capabilities.Write is false")
	}
	// Connectors that discover their objects may list none in the spec.
	if !spec.Capabilities.Discover {
		if spec.Capabilities.Read && !readable {
			t.Error("Spec.Capabilities.Read is true but no object is readable (and Discover is false)")
		}
		if spec.Capabilities.Write && !writable {
			t.Error("Spec.Capabilities.Write is true but no object is writable (and Discover is false)")
		}
	}
	if k.s.Object != "" {
		k.object(ctx, t, c, spec)
	}
}

// objectErrors checks the objects of a spec (or of a Discover response).
func objectErrors(objects []sdk.Object) []string {
	var errs []string
	seen := map[string]bool{}
	for i, o := range objects {
		where := fmt.Sprintf("object %d (%q)", i, o.Name)
		if o.Name == "" {
			errs = append(errs, where+": empty name")
		} else if seen[o.Name] {
			errs = append(errs, where+": duplicate object name")
		}
		seen[o.Name] = true
		if len(o.Fields) == 0 {
			errs = append(errs, where+": no fields")
		}
		fields := map[string]bool{}
		for j, f := range o.Fields {
			fw := fmt.Sprintf("%s field %d (%q)", where, j, f.Name)
			if f.Name == "" {
				errs = append(errs, fw+": empty name")
			} else if fields[f.Name] {
				errs = append(errs, fw+": duplicate field name")
			}
			fields[f.Name] = true
			if !slices.Contains(sdk.FieldTypes, f.Type) {
				errs = append(errs, fmt.Sprintf("%s: type %q is not one of %v", fw, f.Type, sdk.FieldTypes))
			}
		}
		if o.IDField != "" && !fields[o.IDField] {
			errs = append(errs, fmt.Sprintf("%s: IDField %q is not a field", where, o.IDField))
		}
	}
	return errs
}

func (k *kit) checkCheck(t *testing.T) {
	ctx, c := k.connect(t)
	resp, err := c.Check(ctx, sdk.CheckRequest{Config: k.s.Config})
	if err != nil {
		t.Errorf("Check(Suite.Config): %v", err)
	} else if resp.Diagnostics.HasError() {
		t.Errorf("Check(Suite.Config) rejected the working config: %s", resp.Diagnostics.Error())
	}

	bad := map[string]json.RawMessage{"invalid_json": json.RawMessage(`{"not json`)}
	for name, cfg := range k.s.BadConfigs {
		bad[name] = cfg
	}
	names := make([]string, 0, len(bad))
	for name := range bad {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cfg := bad[name]
		t.Run(name, func(t *testing.T) {
			resp, err := c.Check(ctx, sdk.CheckRequest{Config: cfg})
			if err != nil {
				kind := "an error"
				if sdk.IsTransportError(err) {
					kind = "a transport error (did the connector crash?)"
				}
				t.Fatalf("Check(%s) returned %s instead of error diagnostics: %v", cfg, kind, err)
			}
			if !resp.Diagnostics.HasError() {
				t.Fatalf("Check(%s) accepted a bad config: want at least one error diagnostic, got %+v", cfg, resp.Diagnostics)
			}
			for _, d := range resp.Diagnostics {
				if d.Severity == sdk.SeverityError && strings.TrimSpace(d.Summary) == "" {
					t.Errorf("Check(%s): error diagnostic with an empty Summary: %+v", cfg, d)
				}
			}
		})
	}
}

// readTarget connects and returns the object to read, skipping when the
// connector does not read.
func (k *kit) readTarget(t *testing.T) (context.Context, sdk.Connector, sdk.Object) {
	t.Helper()
	ctx, c := k.connect(t)
	spec := k.spec(ctx, t, c)
	if !spec.Capabilities.Read {
		t.Skip("the connector does not read (Spec.Capabilities.Read is false)")
	}
	o := k.object(ctx, t, c, spec)
	if !o.Readable {
		t.Skipf("Suite.Object %q is not readable", o.Name)
	}
	return ctx, c, o
}

// readAll reads the whole object and checks every batch and record. It
// returns the ids in the order read and the number of batches.
func (k *kit) readAll(ctx context.Context, t *testing.T, c sdk.Connector, o sdk.Object, batchSize int) ([]string, int) {
	t.Helper()
	var batches []sdk.ReadBatch
	err := c.Read(ctx, sdk.ReadRequest{Config: k.s.Config, Object: o.Name, BatchSize: batchSize},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			batches = append(batches, b)
			return nil
		}))
	if err != nil {
		t.Fatalf("Read(batch size %d): %v", batchSize, err)
	}
	return checkBatches(t, o, batches, batchSize, true), len(batches)
}

// checkBatches checks batches of a read and returns the ids read. complete
// says the read went to the end (its last batch may be empty without a
// checkpoint).
func checkBatches(t *testing.T, o sdk.Object, batches []sdk.ReadBatch, batchSize int, complete bool) []string {
	t.Helper()
	reports := 0
	report := func(format string, args ...any) {
		t.Helper()
		reports++
		if reports <= maxReports {
			t.Errorf(format, args...)
		} else if reports == maxReports+1 {
			t.Error("... more errors not shown")
		}
	}
	fields := map[string]bool{}
	for _, f := range o.Fields {
		fields[f.Name] = true
	}
	var ids []string
	seen := map[string]int{}
	checkpoints := 0
	for i, b := range batches {
		if b.Diagnostics.HasError() {
			report("batch %d: error diagnostics reading with the working config: %s", i, b.Diagnostics.Error())
		}
		// A batch may leave the checkpoint where it is (nil): a connector
		// that cannot checkpoint inside a listing (an unsorted one) emits it
		// once the listing is read. A complete read must carry one.
		if len(b.Checkpoint) > 0 {
			checkpoints++
		}
		if batchSize > 0 && len(b.Records) > batchSize {
			report("batch %d: %d records, more than the requested batch size %d", i, len(b.Records), batchSize)
		}
		for j, r := range b.Records {
			where := fmt.Sprintf("batch %d record %d (id %q)", i, j, r.ID)
			if r.ID == "" {
				report("%s: empty id", where)
			} else if prev, dup := seen[r.ID]; dup {
				report("%s: id already read at position %d", where, prev)
			} else {
				seen[r.ID] = len(ids)
			}
			ids = append(ids, r.ID)
			if r.Deleted && len(r.Fields) == 0 {
				continue
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(r.Fields, &obj); err != nil || obj == nil {
				report("%s: fields are not a JSON object: %.200s", where, r.Fields)
				continue
			}
			if len(fields) > 0 {
				for key := range obj {
					if !fields[key] {
						report("%s: field %q is not declared in object %q", where, key, o.Name)
					}
				}
			}
		}
	}
	if complete && len(ids) > 0 && checkpoints == 0 {
		report("a complete read of %d records carried no checkpoint: the next read could never resume after them", len(ids))
	}
	return ids
}

func (k *kit) checkReadFull(t *testing.T) {
	ctx, c, o := k.readTarget(t)
	ids, _ := k.readAll(ctx, t, c, o, 0)
	if len(ids) < k.s.MinRecords {
		t.Errorf("full read returned %d records, want at least MinRecords (%d): is the source seeded?", len(ids), k.s.MinRecords)
	}
}

func (k *kit) checkReadResume(t *testing.T) {
	ctx, c, o := k.readTarget(t)
	bs := k.s.ReadBatchSize
	full, nbatches := k.readAll(ctx, t, c, o, bs)
	if t.Failed() {
		t.FailNow()
	}
	if len(full) <= bs || nbatches < 2 {
		t.Fatalf("a read with batch size %d returned %d records in %d batches: need several batches to test resuming (seed more records)", bs, len(full), nbatches)
	}

	// Read up to the first checkpoint, then stop.
	var first []sdk.ReadBatch
	var cursor []byte
	err := c.Read(ctx, sdk.ReadRequest{Config: k.s.Config, Object: o.Name, BatchSize: bs},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			first = append(first, b)
			if len(b.Checkpoint) > 0 {
				cursor = b.Checkpoint
				return errStopRead
			}
			return nil
		}))
	if !errors.Is(err, errStopRead) {
		t.Fatalf("Read stopped by its sink returned %v, want the sink's error", err)
	}
	head := checkBatches(t, o, first, bs, false)

	var rest []sdk.ReadBatch
	err = c.Read(ctx, sdk.ReadRequest{Config: k.s.Config, Object: o.Name, BatchSize: bs, Cursor: cursor},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			rest = append(rest, b)
			return nil
		}))
	if err != nil {
		t.Fatalf("Read resumed from checkpoint %q: %v", cursor, err)
	}
	tail := checkBatches(t, o, rest, bs, true)

	want := map[string]bool{}
	for _, id := range full {
		want[id] = true
	}
	count := map[string]int{}
	for _, id := range slices.Concat(head, tail) {
		count[id]++
	}
	var repeated, missing, extra []string
	for id, n := range count {
		if n > 1 {
			repeated = append(repeated, id)
		}
		if !want[id] {
			extra = append(extra, id)
		}
	}
	for _, id := range full {
		if count[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(repeated) > 0 {
		t.Errorf("resuming from checkpoint %q repeated %d records already read before it: %s", cursor, len(repeated), sample(repeated))
	}
	if len(missing) > 0 {
		t.Errorf("resuming from checkpoint %q lost %d records: %s", cursor, len(missing), sample(missing))
	}
	if len(extra) > 0 {
		t.Errorf("the interrupted and resumed reads returned %d records the full read did not: %s", len(extra), sample(extra))
	}
}

// sample lists a few ids, sorted.
func sample(ids []string) string {
	sort.Strings(ids)
	if len(ids) > 5 {
		return strings.Join(ids[:5], ", ") + fmt.Sprintf(" (and %d more)", len(ids)-5)
	}
	return strings.Join(ids, ", ")
}

func (k *kit) checkWrite(t *testing.T) {
	ctx, c := k.connect(t)
	spec := k.spec(ctx, t, c)
	if !spec.Capabilities.Write {
		t.Skip("the connector does not write (Spec.Capabilities.Write is false)")
	}
	if k.s.NewRecord == nil {
		t.Skip("Suite.NewRecord is nil: write checks skipped")
	}
	o := k.object(ctx, t, c, spec)
	if !o.Writable {
		t.Fatalf("Suite.Object %q is not writable although the connector writes and Suite.NewRecord is set", o.Name)
	}

	n := k.s.WriteRecords
	req := sdk.WriteRequest{Config: k.s.Config, Object: o.Name, Records: make([]sdk.WriteRecord, n)}
	for i := range n {
		fields := k.s.NewRecord(i)
		if !json.Valid(fields) || !bytes.HasPrefix(bytes.TrimSpace(fields), []byte("{")) {
			t.Fatalf("Suite.NewRecord(%d) = %s: want a JSON object", i, fields)
		}
		req.Records[i] = sdk.WriteRecord{Ref: fmt.Sprintf("conformance-%d", i), Fields: fields}
	}

	if o.UpsertKey != "" {
		if _, ok := o.Field(o.UpsertKey); !ok {
			t.Errorf("object %q declares upsert key %q, which is not one of its fields", o.Name, o.UpsertKey)
		}
	}
	before := time.Now().Add(-time.Hour)
	firstIDs := k.write(ctx, t, c, req, "first write", nil)
	if t.Failed() {
		t.FailNow()
	}
	again := req
	what := "same batch written again"
	if o.UpsertKey == "" {
		// Without an upsert key a write without id creates: the host marks
		// a create whose first attempt may have been applied, and the
		// connector must find that record instead of creating another.
		again.Records = slices.Clone(req.Records)
		for i := range again.Records {
			again.Records[i].MayExistSince = before
		}
		what = "same batch written again with MayExistSince (no upsert key)"
	}
	k.write(ctx, t, c, again, what, firstIDs)

	if !o.Readable || !spec.Capabilities.Read {
		return
	}
	ids, _ := k.readAll(ctx, t, c, o, 0)
	count := map[string]int{}
	for _, id := range ids {
		count[id]++
	}
	for i, id := range firstIDs {
		if count[id] != 1 {
			t.Errorf("record %d (id %q) appears %d times in a full read after writing it twice, want once", i, id, count[id])
		}
	}
}

// write writes req and checks the results. With want (the ids of an earlier
// write of the same batch) nothing may be created and the ids must match.
func (k *kit) write(ctx context.Context, t *testing.T, c sdk.Connector, req sdk.WriteRequest, what string, want []string) []string {
	t.Helper()
	resp, err := c.Write(ctx, req)
	if err != nil {
		t.Fatalf("%s: Write: %v", what, err)
	}
	if resp.Diagnostics.HasError() {
		t.Errorf("%s: error diagnostics: %s", what, resp.Diagnostics.Error())
	}
	if len(resp.Results) != len(req.Records) {
		t.Fatalf("%s: %d results for %d records, want exactly one per record", what, len(resp.Results), len(req.Records))
	}
	ids := make([]string, len(resp.Results))
	seen := map[string]int{}
	for i, r := range resp.Results {
		where := fmt.Sprintf("%s: result %d", what, i)
		if r.Ref != req.Records[i].Ref {
			t.Errorf("%s: Ref %q, want %q (results must be in request order)", where, r.Ref, req.Records[i].Ref)
		}
		if r.Status != sdk.WriteOK {
			t.Errorf("%s: status %v (%s), want ok", where, r.Status, r.Message)
			continue
		}
		switch r.Action {
		case sdk.ActionCreated, sdk.ActionUpdated, sdk.ActionUnchanged:
		default:
			t.Errorf("%s: action %v, want created, updated or unchanged", where, r.Action)
		}
		if r.ID == "" {
			t.Errorf("%s: empty ID", where)
		} else if j, dup := seen[r.ID]; dup {
			t.Errorf("%s: ID %q already returned for result %d", where, r.ID, j)
		}
		seen[r.ID] = i
		ids[i] = r.ID
		if want == nil {
			continue
		}
		if r.Action == sdk.ActionCreated {
			t.Errorf("%s: action created: writing the same record twice must not duplicate it", where)
		}
		if r.ID != want[i] {
			t.Errorf("%s: ID %q, want %q as in the first write", where, r.ID, want[i])
		}
	}
	return ids
}
