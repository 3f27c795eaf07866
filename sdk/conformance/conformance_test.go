package conformance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

// flaw is a defect that can be injected in memConn.
type flaw int

const (
	none            flaw = iota
	resumeRepeats        // resuming from a checkpoint re-reads the last record before it
	resumeSkips          // resuming skips a record
	badVersion           // Spec.Version is not semver
	acceptsAnything      // Check accepts any config
	duplicateWrites      // writing the same record twice creates it twice
	noCheckpoint         // batches carry no checkpoint
	leaksGoroutine       // Read leaves a goroutine behind
	checkpointAtEnd      // not a flaw: only the last batch carries the checkpoint
)

// store is the in-memory app behind memConn, shared by the connectors of
// one test.
type store struct {
	mu     sync.Mutex
	people []person
}

type person struct {
	ID, Email, Name string
	UpdatedAt       time.Time
}

func (s *store) seed(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		i := len(s.people) + 1
		s.people = append(s.people, person{
			ID:        fmt.Sprintf("p%d", i),
			Email:     fmt.Sprintf("seed%d@example.com", i),
			Name:      fmt.Sprintf("Seed %d", i),
			UpdatedAt: time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC),
		})
	}
}

// memConn is a tiny connector over store: object "people", config
// {"token": "good"}, cursor {"next": <index>}, writes upserting by email.
type memConn struct {
	st   *store
	flaw flaw
	// done ends the goroutines a leaksGoroutine connector leaves behind
	// (closed by nobody: that is the leak).
	done chan struct{}
}

type memConfig struct {
	Token string `json:"token"`
}

func (c *memConn) Spec(context.Context) (*sdk.Spec, error) {
	version := "1.0.0"
	if c.flaw == badVersion {
		version = "v1.0"
	}
	return &sdk.Spec{
		Name:         "memory",
		Version:      version,
		Title:        "In-memory test connector",
		ConfigSchema: json.RawMessage(`{"type":"object","properties":{"token":{"type":"string"}},"required":["token"]}`),
		Objects: []sdk.Object{{
			Name: "people",
			Fields: []sdk.Field{
				{Name: "id", Type: sdk.TypeString, ReadOnly: true},
				{Name: "email", Type: sdk.TypeString, Required: true},
				{Name: "name", Type: sdk.TypeString},
				{Name: "updated_at", Type: sdk.TypeDateTime, ReadOnly: true},
			},
			IDField: "id", UpsertKey: "email", Readable: true, Writable: true, Incremental: true,
		}},
		Capabilities:    sdk.Capabilities{Read: true, Write: true},
		ProtocolVersion: sdk.ProtocolVersion,
	}, nil
}

func (c *memConn) config(raw json.RawMessage) sdk.Diagnostics {
	var cfg memConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "config is not valid JSON", err.Error())}
	}
	if c.flaw != acceptsAnything && cfg.Token != "good" {
		return sdk.Diagnostics{sdk.Errorf("token", "invalid token", "")}
	}
	return nil
}

func (c *memConn) Check(_ context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	return &sdk.CheckResponse{Diagnostics: c.config(req.Config)}, nil
}

func (c *memConn) Discover(_ context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	spec, _ := c.Spec(context.Background())
	return &sdk.DiscoverResponse{Objects: spec.Objects, Diagnostics: c.config(req.Config)}, nil
}

func (c *memConn) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	if d := c.config(req.Config); d.HasError() {
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: d})
	}
	if c.flaw == leaksGoroutine {
		go func() { <-c.done }()
	}
	next := 0
	if len(req.Cursor) > 0 {
		var cur struct{ Next int }
		if err := json.Unmarshal(req.Cursor, &cur); err != nil {
			return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{sdk.Errorf("cursor", "invalid cursor", err.Error())}})
		}
		next = cur.Next
		switch c.flaw {
		case resumeRepeats:
			next--
		case resumeSkips:
			next++
		}
	}
	bs := req.BatchSize
	if bs <= 0 {
		bs = 100
	}
	c.st.mu.Lock()
	people := append([]person(nil), c.st.people...)
	c.st.mu.Unlock()
	for next < len(people) {
		end := min(next+bs, len(people))
		batch := sdk.ReadBatch{Records: make([]sdk.Record, 0, end-next)}
		for _, p := range people[next:end] {
			fields, err := json.Marshal(map[string]any{"id": p.ID, "email": p.Email, "name": p.Name, "updated_at": p.UpdatedAt})
			if err != nil {
				return fmt.Errorf("memory: read: %w", err)
			}
			batch.Records = append(batch.Records, sdk.Record{ID: p.ID, UpdatedAt: p.UpdatedAt, Fields: fields})
		}
		if c.flaw != noCheckpoint && (c.flaw != checkpointAtEnd || end == len(people)) {
			batch.Checkpoint = []byte(`{"next":` + strconv.Itoa(end) + `}`)
		}
		if err := sink.Emit(ctx, batch); err != nil {
			return err
		}
		next = end
	}
	return nil
}

func (c *memConn) Write(_ context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	if d := c.config(req.Config); d.HasError() {
		resp := &sdk.WriteResponse{Diagnostics: d}
		for _, r := range req.Records {
			resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRejected, Message: "invalid config"})
		}
		return resp, nil
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	resp := &sdk.WriteResponse{}
	for _, r := range req.Records {
		var in struct{ Email, Name string }
		if err := json.Unmarshal(r.Fields, &in); err != nil || in.Email == "" {
			resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRejected, Message: "email is required"})
			continue
		}
		idx := -1
		for i, p := range c.st.people {
			if p.Email == in.Email && c.flaw != duplicateWrites {
				idx = i
			}
		}
		action := sdk.ActionUpdated
		if idx < 0 {
			c.st.people = append(c.st.people, person{ID: fmt.Sprintf("p%d", len(c.st.people)+1), Email: in.Email})
			idx = len(c.st.people) - 1
			action = sdk.ActionCreated
		} else if c.st.people[idx].Name == in.Name {
			action = sdk.ActionUnchanged
		}
		c.st.people[idx].Name = in.Name
		c.st.people[idx].UpdatedAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteOK, Action: action, ID: c.st.people[idx].ID})
	}
	return resp, nil
}

func (c *memConn) HandleWebhook(context.Context, sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return &sdk.WebhookResponse{Diagnostics: sdk.Diagnostics{sdk.Errorf("", "memory does not accept webhooks", "")}}, nil
}

func (c *memConn) Stop(context.Context) error { return nil }

// suite returns the conformance suite of a memConn with flaw f.
func suite(f flaw) conformance.Suite {
	st := &store{}
	done := make(chan struct{})
	return conformance.Suite{
		New:    func(*testing.T) sdk.Connector { return &memConn{st: st, flaw: f, done: done} },
		Config: json.RawMessage(`{"token":"good"}`),
		BadConfigs: map[string]json.RawMessage{
			"wrong token": json.RawMessage(`{"token":"bad"}`),
			"no token":    json.RawMessage(`{}`),
		},
		Object: "people",
		Seed:   func(_ *testing.T, n int) { st.seed(n) },
		NewRecord: func(i int) json.RawMessage {
			return json.RawMessage(fmt.Sprintf(`{"email":"new%d@example.com","name":"New %d"}`, i, i))
		},
		MinRecords: 12,
	}
}

// TestRun runs the kit against a correct connector: every check passes.
// Not parallel: the leak check sees the whole process.
func TestRun(t *testing.T) {
	conformance.Run(t, suite(none))
}

// TestRunReadOnly checks the kit skips write checks when there is no
// NewRecord.
func TestRunReadOnly(t *testing.T) {
	s := suite(none)
	s.NewRecord = nil
	conformance.Run(t, s)
}

const brokenEnv = "CONFORMANCE_TEST_BROKEN"

// TestBrokenHelper runs the kit against each flawed connector. It runs only
// in the subprocess started by TestBrokenConnectorsFail, where its failures
// are the expected result.
func TestBrokenHelper(t *testing.T) {
	if os.Getenv(brokenEnv) != "1" {
		t.Skip("run by TestBrokenConnectorsFail")
	}
	for name, f := range brokenCases() {
		t.Run(name, func(t *testing.T) { conformance.Run(t, suite(f.flaw)) })
	}
}

type brokenCase struct {
	flaw flaw
	fail []string // the checks that must fail; every other must pass or skip
}

func brokenCases() map[string]brokenCase {
	return map[string]brokenCase{
		"resume_repeats":   {resumeRepeats, []string{"read_resume"}},
		"resume_skips":     {resumeSkips, []string{"read_resume"}},
		"bad_version":      {badVersion, []string{"spec"}},
		"accepts_anything": {acceptsAnything, []string{"check", "check/wrong_token", "check/no_token"}},
		"duplicate_writes": {duplicateWrites, []string{"write"}},
		"no_checkpoint":    {noCheckpoint, []string{"read_full", "read_resume", "write"}}, // write reads back
		"leaks_goroutine":  {leaksGoroutine, []string{"leak"}},
	}
}

// TestBrokenConnectorsFail proves the kit's checks can fail, and fail
// precisely: it runs TestBrokenHelper in a subprocess and reads the verdict
// of each check.
func TestBrokenConnectorsFail(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenHelper$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), brokenEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the kit passed every flawed connector:\n%s", out)
	}
	verdicts := map[string]string{}
	for _, m := range regexp.MustCompile(`--- (PASS|FAIL|SKIP): TestBrokenHelper/(\S+)`).FindAllStringSubmatch(string(out), -1) {
		verdicts[m[2]] = m[1]
	}
	checks := []string{"spec", "check", "check/invalid_json", "check/wrong_token", "check/no_token", "read_full", "read_resume", "write", "leak"}
	for name, bc := range brokenCases() {
		for _, check := range checks {
			want := "PASS"
			for _, f := range bc.fail {
				if f == check {
					want = "FAIL"
				}
			}
			if got := verdicts[name+"/"+check]; got != want {
				t.Errorf("%s: check %s: %q, want %s", name, check, got, want)
			}
		}
	}
	if t.Failed() {
		t.Logf("subprocess output:\n%s", out)
	}
}

// A connector that can only checkpoint once its whole listing is read (an
// unsorted listing) conforms: batches may leave the checkpoint where it is.
// Not parallel: the kit's goroutine-leak check must not see other tests'.
func TestCheckpointOnlyAtTheEndConforms(t *testing.T) {
	conformance.Run(t, suite(checkpointAtEnd))
}
