package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/store"
)

// listDeletes lists a workflow's deletions waiting for approval (or, with
// ?status=, those in another state; ?status=all for every one).
func (s *server) listDeletes(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	status := c.DefaultQuery("status", store.DeletePending)
	switch {
	case status == "all":
		status = ""
	case !slices.Contains(store.DeleteStatuses, status):
		return errorf(http.StatusBadRequest, "invalid_status", "status must be one of %s or all, not %q", strings.Join(store.DeleteStatuses, ", "), status)
	}
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	ds, next, err := s.store.ListPendingDeletes(c.Request.Context(), w.AccountID, w.ID, status, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(ds, viewPendingDelete), next))
	return nil
}

func (s *server) approveDelete(c *gin.Context) error { return s.decideDelete(c, store.DeleteApproved) }
func (s *server) discardDelete(c *gin.Context) error { return s.decideDelete(c, store.DeleteDiscarded) }

func (s *server) decideDelete(c *gin.Context, status string) error {
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	id := c.Param("delete_id")
	d, err := s.store.DecidePendingDelete(c.Request.Context(), w.AccountID, w.ID, id, status, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("delete", id)
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, "delete_not_pending", "delete %q is %s: only a pending delete can be approved or discarded", id, d.Status)
	case err != nil:
		return err
	}
	if status == store.DeleteApproved {
		s.runApproved(c, w)
	}
	c.JSON(http.StatusOK, viewPendingDelete(d))
	return nil
}

type bulkDecisionView struct {
	Status string `json:"status"`
	// Count is how many pending deletes took the status.
	Count int64 `json:"count"`
	// RunID is the run queued to execute approved deletes.
	RunID string `json:"run_id,omitempty"`
}

func (s *server) approveAllDeletes(c *gin.Context) error {
	return s.decideAllDeletes(c, store.DeleteApproved)
}
func (s *server) discardAllDeletes(c *gin.Context) error {
	return s.decideAllDeletes(c, store.DeleteDiscarded)
}

func (s *server) decideAllDeletes(c *gin.Context, status string) error {
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	n, err := s.store.DecideAllPendingDeletes(c.Request.Context(), w.AccountID, w.ID, status, s.now())
	if err != nil {
		return err
	}
	out := bulkDecisionView{Status: status, Count: n}
	if status == store.DeleteApproved && n > 0 {
		out.RunID = s.runApproved(c, w)
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// runApproved queues a run that executes the approved deletes and returns
// its id ("" when none was queued). The decision is already stored: when no
// run can be queued now, the next scheduled run executes it, so a failure
// here is logged, not answered. A paused workflow stays paused.
func (s *server) runApproved(c *gin.Context, w store.Workflow) string {
	if s.runner == nil || w.Status != store.WorkflowActive {
		return ""
	}
	runID, err := s.runner.Enqueue(c.Request.Context(), w.AccountID, w.ID, store.TriggerManual)
	if err != nil {
		s.log.Warn("enqueue run for approved deletes", "workflow_id", w.ID, "request_id", requestID(c), "error", err)
		return ""
	}
	return runID
}
