package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/store"
)

// idQuery reads an optional query parameter that holds a record id.
func idQuery(c *gin.Context, name string) (string, error) {
	v := c.Query(name)
	if !cleanText(v) {
		return "", errorf(http.StatusBadRequest, "invalid_"+name, "%s must be UTF-8 text without NUL characters", name)
	}
	return v, nil
}

// listLinks lists the linked records of a workflow, newest first.
func (s *server) listLinks(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	var f store.LinkFilter
	if f.SourceID, err = idQuery(c, "source_id"); err != nil {
		return err
	}
	if f.TargetID, err = idQuery(c, "target_id"); err != nil {
		return err
	}
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	ls, next, err := s.store.ListLinks(c.Request.Context(), w.AccountID, w.ID, f, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(ls, viewLink), next))
	return nil
}

// getLink answers one linked record with a page of its history (?limit and
// ?cursor page the history).
func (s *server) getLink(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	w, err := s.getWF(c, c.Param("id"))
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	id := c.Param("link_id")
	l, err := s.store.GetLink(ctx, w.AccountID, w.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("linked record", id)
	}
	if err != nil {
		return err
	}
	es, next, err := s.store.ListLinkHistory(ctx, w.AccountID, l.ID, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, linkDetailView{linkView: viewLink(l), History: list(mapSlice(es, viewLinkEvent), next)})
	return nil
}
