package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/host/store"
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

// listApps pages over the catalog by name (the registry holds it in memory).
func (s *server) listApps(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	apps, err := s.registry.Apps(c.Request.Context())
	if err != nil {
		return fmt.Errorf("registry: apps: %w", err)
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	start := 0
	if opts.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(opts.Cursor)
		if err != nil {
			return listError(store.ErrBadCursor)
		}
		start = sort.Search(len(apps), func(i int) bool { return apps[i].Name > string(after) })
	}
	end := min(start+opts.Limit, len(apps))
	next := ""
	if end < len(apps) {
		next = base64.RawURLEncoding.EncodeToString([]byte(apps[end-1].Name))
	}
	items := make([]appView, 0, end-start)
	for _, a := range apps[start:end] {
		items = append(items, viewApp(a.Name, a.Version, a.Spec))
	}
	c.JSON(http.StatusOK, list(items, next))
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
