package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk"
)

// getConn loads a connection of the request's account, or a 404.
func (s *server) getConn(c *gin.Context, id string) (store.Connection, error) {
	conn, err := s.store.GetConnection(c.Request.Context(), principal(c).Account.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Connection{}, notFound("connection", id)
	}
	return conn, err
}

// openConfig decrypts a connection's config.
func (s *server) openConfig(conn store.Connection) (json.RawMessage, error) {
	plain, err := s.box.Open(conn.ConfigEnc, store.ConnectionAAD(conn.ID))
	if err != nil {
		return nil, fmt.Errorf("connection %s: open config: %w", conn.ID, err)
	}
	return plain, nil
}

// connectorUnavailable is the answer when a connector call fails in
// transport: not the user's fault, and worth retrying.
func connectorUnavailable(app string) *apiError {
	return errorf(http.StatusBadGateway, "connector_unavailable", "the %s connector did not answer: try again in a moment", app)
}

func appGone(app string) *apiError {
	return invalid("unknown_app", "app %q is no longer installed", app)
}

// check asks the app's connector to verify conn's config and stores the
// outcome (with credentials the connector refreshed).
func (s *server) check(ctx context.Context, conn store.Connection) (store.Connection, sdk.Diagnostics, error) {
	config, err := s.openConfig(conn)
	if err != nil {
		return conn, nil, err
	}
	lease, err := s.registry.Acquire(ctx, conn.App)
	if errors.Is(err, connectors.ErrUnknownApp) {
		return conn, nil, appGone(conn.App)
	}
	if err != nil {
		s.log.Warn("acquire connector", "app", conn.App, "error", err)
		return conn, nil, connectorUnavailable(conn.App)
	}
	defer lease.Release()
	cctx, cancel := context.WithTimeout(ctx, connectorTimeout)
	defer cancel()
	resp, err := lease.Check(cctx, sdk.CheckRequest{Config: config})
	if err != nil {
		s.log.Warn("connector check", "app", conn.App, "version", lease.Version, "error", err)
		return conn, nil, connectorUnavailable(conn.App)
	}
	result := store.ConnectionCheck{CheckedConfigEnc: conn.ConfigEnc, Status: store.ConnectionOK, At: s.now()}
	if resp.Diagnostics.HasError() {
		result.Status = store.ConnectionError
		result.Message = resp.Diagnostics.Error()
	}
	if updated := bytes.TrimSpace(resp.UpdatedConfig); len(updated) > 0 && updated[0] == '{' && json.Valid(updated) {
		if result.NewConfigEnc, err = s.box.Seal(updated, store.ConnectionAAD(conn.ID)); err != nil {
			return conn, nil, err
		}
	}
	out, err := s.store.SetConnectionCheck(ctx, conn.AccountID, conn.ID, result)
	if errors.Is(err, store.ErrConflict) {
		return conn, nil, errorf(http.StatusConflict, "connection_changed", "the connection's config changed during the check: check again")
	}
	if errors.Is(err, store.ErrNotFound) {
		return conn, nil, notFound("connection", conn.ID)
	}
	if err != nil {
		return conn, nil, err
	}
	return out, resp.Diagnostics, nil
}

// checkQuietly checks a new or changed config as a courtesy: when the
// connector cannot answer, the connection stays unchecked.
func (s *server) checkQuietly(ctx context.Context, conn store.Connection) store.Connection {
	out, _, err := s.check(ctx, conn)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			s.log.Error("check connection", "connection", conn.ID, "error", err)
		}
		return conn
	}
	return out
}

type createConnectionRequest struct {
	App    string          `json:"app"`
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config"`
}

func (s *server) createConnection(c *gin.Context) error {
	var req createConnectionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.App == "" {
		return invalid("invalid_app", "app is required: GET /v1/apps lists the apps")
	}
	name, err := cleanName("name", req.Name)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	app, err := s.registry.App(ctx, req.App)
	if errors.Is(err, connectors.ErrUnknownApp) {
		return invalid("unknown_app", "unknown app %q: GET /v1/apps lists the apps you can connect", req.App)
	}
	if err != nil {
		return fmt.Errorf("registry: app %s: %w", req.App, err)
	}
	if err := s.validateConfig(app, req.Config); err != nil {
		return err
	}
	id := store.NewID(store.PrefixConnection)
	enc, err := s.box.Seal(compact(req.Config), store.ConnectionAAD(id))
	if err != nil {
		return err
	}
	conn, err := s.store.CreateConnection(ctx, store.Connection{
		ID: id, AccountID: principal(c).Account.ID, App: app.Name, Name: name, ConfigEnc: enc,
	})
	if err != nil {
		return err
	}
	conn = s.checkQuietly(ctx, conn)
	c.JSON(http.StatusCreated, viewConnection(conn))
	return nil
}

// compact removes insignificant whitespace from valid JSON.
func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

func (s *server) listConnections(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	cs, next, err := s.store.ListConnections(c.Request.Context(), principal(c).Account.ID, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(cs, viewConnection), next))
	return nil
}

func (s *server) getConnection(c *gin.Context) error {
	conn, err := s.getConn(c, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, viewConnection(conn))
	return nil
}

type updateConnectionRequest struct {
	Name   *string         `json:"name"`
	Config json.RawMessage `json:"config"`
}

func (s *server) updateConnection(c *gin.Context) error {
	var req updateConnectionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	conn, err := s.getConn(c, c.Param("id"))
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	var u store.ConnectionUpdate
	if req.Name != nil {
		name, err := cleanName("name", *req.Name)
		if err != nil {
			return err
		}
		u.Name = &name
	}
	if req.Config != nil {
		app, err := s.registry.App(ctx, conn.App)
		if errors.Is(err, connectors.ErrUnknownApp) {
			return appGone(conn.App)
		}
		if err != nil {
			return fmt.Errorf("registry: app %s: %w", conn.App, err)
		}
		if err := s.validateConfig(app, req.Config); err != nil {
			return err
		}
		if u.ConfigEnc, err = s.box.Seal(compact(req.Config), store.ConnectionAAD(conn.ID)); err != nil {
			return err
		}
	}
	if u.Name == nil && u.ConfigEnc == nil {
		return invalid("nothing_to_change", "give name and/or config to change")
	}
	conn, err = s.store.UpdateConnection(ctx, conn.AccountID, conn.ID, u, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("connection", c.Param("id"))
	}
	if err != nil {
		return err
	}
	if u.ConfigEnc != nil {
		conn = s.checkQuietly(ctx, conn)
	}
	c.JSON(http.StatusOK, viewConnection(conn))
	return nil
}

func (s *server) deleteConnection(c *gin.Context) error {
	id := c.Param("id")
	err := s.store.DeleteConnection(c.Request.Context(), principal(c).Account.ID, id)
	var inUse *store.ConnectionInUseError
	switch {
	case errors.As(err, &inUse):
		return errorf(http.StatusConflict, "connection_in_use", "%s", inUse.Error())
	case errors.Is(err, store.ErrNotFound):
		return notFound("connection", id)
	case err != nil:
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type checkView struct {
	Status      string           `json:"status"`
	Message     string           `json:"message"`
	Diagnostics []diagnosticView `json:"diagnostics"`
	Connection  connectionView   `json:"connection"`
}

func (s *server) checkConnection(c *gin.Context) error {
	conn, err := s.getConn(c, c.Param("id"))
	if err != nil {
		return err
	}
	conn, diags, err := s.check(c.Request.Context(), conn)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, checkView{Status: conn.Status, Message: conn.StatusMessage, Diagnostics: viewDiagnostics(diags), Connection: viewConnection(conn)})
	return nil
}
