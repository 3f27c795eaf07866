package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/connectors"
)

// app returns an installed app, or a 404 naming it.
func (s *server) app(ctx context.Context, name string) (connectors.App, error) {
	app, err := s.registry.App(ctx, name)
	if errors.Is(err, connectors.ErrUnknownApp) {
		return connectors.App{}, errorf(http.StatusNotFound, "not_found", "app %q is not installed: GET /v1/apps lists the apps", name)
	}
	if err != nil {
		return connectors.App{}, fmt.Errorf("registry: app %s: %w", name, err)
	}
	return app, nil
}

// listApps answers the whole catalog on one page: it is small and held in
// memory by the registry.
func (s *server) listApps(c *gin.Context) error {
	apps, err := s.registry.Apps(c.Request.Context())
	if err != nil {
		return fmt.Errorf("registry: apps: %w", err)
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	items := make([]appView, len(apps))
	for i, a := range apps {
		items[i] = viewApp(a.Name, a.Version, a.Spec)
	}
	c.JSON(http.StatusOK, list(items, ""))
	return nil
}

func (s *server) getApp(c *gin.Context) error {
	app, err := s.app(c.Request.Context(), c.Param("app"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, viewApp(app.Name, app.Version, app.Spec))
	return nil
}

func (s *server) getAppDocs(c *gin.Context) error {
	app, err := s.app(c.Request.Context(), c.Param("app"))
	if err != nil {
		return err
	}
	docs := app.Spec.Docs
	if strings.TrimSpace(docs) == "" {
		docs = fmt.Sprintf("# %s\n\nThis connector has no documentation yet.\n", app.Spec.Title)
	}
	c.Data(http.StatusOK, "text/markdown; charset=utf-8", []byte(docs))
	return nil
}

type adminConnectorView struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	Title           string `json:"title"`
	ProtocolVersion uint32 `json:"protocol_version"`
}

func (s *server) adminConnectors(c *gin.Context) error {
	apps, err := s.registry.Apps(c.Request.Context())
	if err != nil {
		return fmt.Errorf("registry: apps: %w", err)
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	items := make([]adminConnectorView, len(apps))
	for i, a := range apps {
		items[i] = adminConnectorView{Name: a.Name, Version: a.Version, Title: a.Spec.Title, ProtocolVersion: a.Spec.ProtocolVersion}
	}
	c.JSON(http.StatusOK, list(items, ""))
	return nil
}
