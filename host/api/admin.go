package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/connectors"
)

// ConnectorAdmin is what the operator routes need from the connector
// runtime (*connectors.Manager implements it).
type ConnectorAdmin interface {
	// Status reports every installed version: state, process, crashes.
	Status() []connectors.VersionStatus
	// Install records one version of the plugin directory in the catalog,
	// refusing it (errors.Is connectors.ErrChecksumMismatch, catalog
	// untouched) when wantSHA256 is given and the executable's differs.
	Install(ctx context.Context, name, version, wantSHA256 string) (connectors.VersionStatus, error)
	// Activate makes a version the one new runs use.
	Activate(ctx context.Context, name, version string) error
	// Rollback goes back to the previous active version.
	Rollback(ctx context.Context, name string) error
}

// adminVersionView is one installed version of a connector.
type adminVersionView struct {
	Version   string `json:"version"`
	SHA256    string `json:"sha256"`
	Active    bool   `json:"active"`
	State     string `json:"state"`
	PID       int    `json:"pid,omitempty"`
	Leases    int    `json:"leases"`
	Restarts  int    `json:"restarts"`
	Crashes   int    `json:"crashes"`
	RetryAt   string `json:"retry_at,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// adminConnectorView is a connector with its installed versions.
type adminConnectorView struct {
	Name            string             `json:"name"`
	ActiveVersion   string             `json:"active_version,omitempty"`
	Title           string             `json:"title,omitempty"`
	ProtocolVersion uint32             `json:"protocol_version,omitempty"`
	Versions        []adminVersionView `json:"versions"`
}

func viewVersion(v connectors.VersionStatus) adminVersionView {
	out := adminVersionView{Version: v.Version, SHA256: v.SHA256, Active: v.Active, State: v.State, PID: v.PID,
		Leases: v.Leases, Restarts: v.Restarts, Crashes: v.Crashes, LastError: v.LastError}
	if !v.RetryAt.IsZero() {
		out.RetryAt = v.RetryAt.UTC().Format("2006-01-02T15:04:05Z07:00")
	}
	return out
}

// adminViews groups the runtime's version statuses by connector, adding the
// active version's title from the registry when it can describe it.
func (s *server) adminViews(ctx context.Context) []adminConnectorView {
	var out []adminConnectorView
	for _, v := range s.admin.Status() {
		if len(out) == 0 || out[len(out)-1].Name != v.Name {
			out = append(out, adminConnectorView{Name: v.Name, Versions: []adminVersionView{}})
		}
		cur := &out[len(out)-1]
		cur.Versions = append(cur.Versions, viewVersion(v))
		if v.Active {
			cur.ActiveVersion = v.Version
		}
	}
	apps, _ := s.registry.Apps(ctx) // a connector that cannot start is listed without its title
	for i := range out {
		for _, a := range apps {
			if a.Name == out[i].Name {
				out[i].Title, out[i].ProtocolVersion = a.Spec.Title, a.Spec.ProtocolVersion
			}
		}
	}
	return out
}

func (s *server) adminConnectors(c *gin.Context) error {
	if s.admin == nil {
		return s.adminConnectorsFromRegistry(c)
	}
	c.JSON(http.StatusOK, list(s.adminViews(c.Request.Context()), ""))
	return nil
}

// adminConnectorsFromRegistry lists the active versions only (a runtime
// without the operator interface).
func (s *server) adminConnectorsFromRegistry(c *gin.Context) error {
	apps, err := s.registry.Apps(c.Request.Context())
	if err != nil {
		return fmt.Errorf("registry: apps: %w", err)
	}
	items := make([]adminConnectorView, len(apps))
	for i, a := range apps {
		items[i] = adminConnectorView{Name: a.Name, ActiveVersion: a.Version, Title: a.Spec.Title, ProtocolVersion: a.Spec.ProtocolVersion,
			Versions: []adminVersionView{{Version: a.Version, Active: true}}}
	}
	c.JSON(http.StatusOK, list(items, ""))
	return nil
}

// adminConnector answers one connector's view, or 404.
func (s *server) adminConnector(ctx context.Context, name string) (adminConnectorView, error) {
	for _, v := range s.adminViews(ctx) {
		if v.Name == name {
			return v, nil
		}
	}
	return adminConnectorView{}, notFound("connector", name)
}

func (s *server) requireConnectorAdmin() error {
	if s.admin == nil {
		return errorf(http.StatusNotImplemented, "not_available", "this host's connector runtime cannot be administered")
	}
	return nil
}

type installRequest struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// installVersion records a version an operator put in the plugin directory
// (<dir>/<name>/<version>/<executable>) in the catalog, checking its sha256
// when given.
func (s *server) installVersion(c *gin.Context) error {
	if err := s.requireConnectorAdmin(); err != nil {
		return err
	}
	var req installRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	name := c.Param("name")
	if strings.TrimSpace(req.Version) == "" {
		return invalid("invalid_version", "version is required: the directory name under %s/ in the plugin directory", name)
	}
	ctx := c.Request.Context()
	// The sha256 is checked by Install before the catalog is touched: a
	// mismatching executable is never installed, so it cannot be activated.
	st, err := s.admin.Install(ctx, name, req.Version, req.SHA256)
	var bad *connectors.SHA256MismatchError
	switch {
	case errors.As(err, &bad):
		return errorf(http.StatusConflict, "checksum_mismatch", "%s %s has sha256 %s, not the %s given: check the file you copied (not installed)", name, req.Version, bad.Got, bad.Want)
	case errors.Is(err, connectors.ErrUnknownApp):
		return invalid("unknown_connector", "no connector %q in the plugin directory: put its executable at <plugin dir>/%s/%s/", name, name, req.Version)
	case errors.Is(err, connectors.ErrUnknownVersion):
		return invalid("unknown_version", "no version %q of %s in the plugin directory: put its executable at <plugin dir>/%s/%s/ (%v)", req.Version, name, name, req.Version, err)
	case err != nil:
		return fmt.Errorf("install %s %s: %w", name, req.Version, err)
	}
	switch st.State {
	case connectors.StatusMissing:
		return invalid("missing", "%s %s is in the catalog but its executable is no longer in the plugin directory", name, req.Version)
	case connectors.StatusChecksumMismatch:
		return errorf(http.StatusConflict, "checksum_mismatch", "%s %s changed on disk since it was installed (sha256 %s): install it under a new version", name, req.Version, st.SHA256)
	}
	view, err := s.adminConnector(ctx, name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, view)
	return nil
}

type activateRequest struct {
	Version string `json:"version"`
}

// activateVersion makes a version active: new runs use it, runs in flight
// finish on the version they leased.
func (s *server) activateVersion(c *gin.Context) error {
	if err := s.requireConnectorAdmin(); err != nil {
		return err
	}
	var req activateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Version) == "" {
		return invalid("invalid_version", "version is required: GET /admin/connectors lists the installed versions")
	}
	name, ctx := c.Param("name"), c.Request.Context()
	if err := adminError(s.admin.Activate(ctx, name, req.Version), name, req.Version); err != nil {
		return err
	}
	view, err := s.adminConnector(ctx, name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, view)
	return nil
}

func (s *server) rollbackVersion(c *gin.Context) error {
	if err := s.requireConnectorAdmin(); err != nil {
		return err
	}
	name, ctx := c.Param("name"), c.Request.Context()
	if err := adminError(s.admin.Rollback(ctx, name), name, ""); err != nil {
		return err
	}
	view, err := s.adminConnector(ctx, name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, view)
	return nil
}

// adminError turns the runtime's errors into answers that say what to do.
func adminError(err error, name, version string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, connectors.ErrUnknownApp):
		return notFound("connector", name)
	case errors.Is(err, connectors.ErrUnknownVersion):
		return invalid("unknown_version", "%s has no installed version %q: install it first (POST /admin/connectors/%s/versions)", name, version, name)
	case errors.Is(err, connectors.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "another host changed the active version of %s meanwhile: GET /admin/connectors and try again", name)
	case errors.Is(err, connectors.ErrNoPreviousVersion):
		return errorf(http.StatusConflict, "no_previous_version", "%s has no previous version to roll back to", name)
	case errors.Is(err, connectors.ErrChecksumMismatch):
		return errorf(http.StatusConflict, "checksum_mismatch", "%s %s changed on disk since it was installed: it is never started", name, version)
	case errors.Is(err, connectors.ErrMissing):
		return errorf(http.StatusConflict, "missing", "the executable of %s %s is no longer in the plugin directory", name, version)
	}
	return err
}
