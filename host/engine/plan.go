package engine

// Side names one side of a workflow.
type Side string

const (
	SideSource Side = "source"
	SideTarget Side = "target"
)

// Other returns the other side.
func (s Side) Other() Side {
	if s == SideSource {
		return SideTarget
	}
	return SideSource
}

// Direction names the way a change flows.
type Direction string

const (
	ToTarget Direction = "to_target"
	ToSource Direction = "to_source"
)

// ActionKind is what the plan does with one record.
type ActionKind string

const (
	ActCreate    ActionKind = "create"
	ActUpdate    ActionKind = "update"
	ActDelete    ActionKind = "delete"
	ActMatch     ActionKind = "match"     // linked to an existing record by the matching key
	ActSkip      ActionKind = "skip"      // unchanged, echo of Synchron's own write, or filtered out
	ActAmbiguous ActionKind = "ambiguous" // the matching key matches several records: left alone
	ActConflict  ActionKind = "conflict"  // both sides changed: the policy chose a winner
	ActQueue     ActionKind = "queue"     // deletion waiting for approval
)

// PlannedAction is one step of a plan, as the preview reports it.
type PlannedAction struct {
	Kind      ActionKind `json:"kind"`
	Direction Direction  `json:"direction,omitempty"`
	SourceID  string     `json:"source_id,omitempty"`
	TargetID  string     `json:"target_id,omitempty"`
	Note      string     `json:"note,omitempty"`
}

// Preview is what the next run of a workflow would do, computed without
// writing anything anywhere.
type Preview struct {
	ToTarget  Counts `json:"to_target"`
	ToSource  Counts `json:"to_source"`
	Matched   int64  `json:"matched"`
	Ambiguous int64  `json:"ambiguous"`
	Conflicts int64  `json:"conflicts"`
	// QueuedDeletes would wait for approval (deletes = approve).
	QueuedDeletes int64 `json:"queued_deletes"`
	// LookupCreates are the records the mapping's lookups would create in
	// the target app (values no record of the looked-up object has); they
	// are counted in ToTarget.Created and Transactions.
	LookupCreates int64 `json:"lookup_creates"`
	// Transactions the run would use (creates, updates and deletes in both apps).
	Transactions int64 `json:"transactions"`
	// DeleteSafetyStop is true when the run would delete more than the
	// workflow's threshold of linked records, so it would delete nothing.
	DeleteSafetyStop bool `json:"delete_safety_stop"`
	// Actions lists the first planned actions (at most 100), for a look.
	Actions []PlannedAction `json:"actions"`
	// Note qualifies the figures when the engine cannot tell them exactly.
	Note string `json:"note,omitempty"`
}
