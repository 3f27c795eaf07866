package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/host/store"
)

func runnerUnavailable() *apiError {
	return errorf(http.StatusServiceUnavailable, "runner_unavailable", "runs cannot be started on this server right now: try again later")
}

// previewWorkflow answers what the next run would do; it writes nothing.
func (s *server) previewWorkflow(c *gin.Context) error {
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	if s.runner == nil {
		return runnerUnavailable()
	}
	p, err := s.runner.Preview(c.Request.Context(), w.AccountID, w.ID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("workflow", w.ID)
	}
	if err != nil {
		return fmt.Errorf("preview %s: %w", w.ID, err)
	}
	if p == nil {
		return fmt.Errorf("preview %s: the runner answered nothing", w.ID)
	}
	out := *p
	if out.Actions == nil {
		out.Actions = []engine.PlannedAction{}
	}
	c.JSON(http.StatusOK, out)
	return nil
}

type retryView struct {
	Run     runView `json:"run"`
	Retried int     `json:"retried"`
}

// retryRunRecords queues a run that retries the failed records of a run.
func (s *server) retryRunRecords(c *gin.Context) error {
	id := c.Param("id")
	accountID := principal(c).Account.ID
	ctx := c.Request.Context()
	if _, err := s.store.GetRun(ctx, accountID, id); errors.Is(err, store.ErrNotFound) {
		return notFound("run", id)
	} else if err != nil {
		return err
	}
	n, err := s.store.CountRunRecords(ctx, accountID, id, store.RetryableRecordStatuses...)
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf(http.StatusConflict, "nothing_to_retry", "run %q has no failed records to retry", id)
	}
	if s.runner == nil {
		return runnerUnavailable()
	}
	newID, retried, err := s.runner.RetryFailed(ctx, accountID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("run", id)
	case err == nil && newID == "":
		// Later runs retried or synced them since.
		return errorf(http.StatusConflict, "nothing_to_retry", "the failed records of run %q have been retried or synced since: nothing is left to retry", id)
	case err != nil:
		return fmt.Errorf("retry records of %s: %w", id, err)
	}
	run, err := s.store.GetRun(ctx, accountID, newID)
	if err != nil {
		return fmt.Errorf("retry run %s: %w", newID, err)
	}
	c.JSON(http.StatusAccepted, retryView{Run: viewRun(run), Retried: retried})
	return nil
}
