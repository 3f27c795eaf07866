package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/store"
)

// listNotifications lists the account's notices, newest first; ?unread=true
// keeps those not yet read.
func (s *server) listNotifications(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	unread := false
	if raw, ok := c.GetQuery("unread"); ok {
		if unread, err = strconv.ParseBool(raw); err != nil {
			return errorf(http.StatusBadRequest, "invalid_unread", "unread must be true or false, not %q", raw)
		}
	}
	ns, next, err := s.store.ListNotifications(c.Request.Context(), principal(c).Account.ID, unread, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(ns, viewNotification), next))
	return nil
}

// readNotification marks a notice read; reading it again changes nothing.
func (s *server) readNotification(c *gin.Context) error {
	id := c.Param("id")
	n, err := s.store.MarkNotificationRead(c.Request.Context(), principal(c).Account.ID, id, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("notification", id)
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, viewNotification(n))
	return nil
}
