package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// readyTimeout bounds the checks of /readyz.
const readyTimeout = 3 * time.Second

// healthz answers 200 while the process serves HTTP.
func (s *server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 when the database and the connector registry answer,
// so a load balancer sends traffic only to a host that can serve it.
func (s *server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("not ready: database", "error", err)
		writeError(c, errorf(http.StatusServiceUnavailable, "not_ready", "database is not reachable"))
		return
	}
	if _, err := s.registry.Apps(ctx); err != nil {
		s.log.Warn("not ready: connectors", "error", err)
		writeError(c, errorf(http.StatusServiceUnavailable, "not_ready", "connector registry is not reachable"))
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

func (s *server) serveMetrics(c *gin.Context) {
	s.metricsHandler.ServeHTTP(c.Writer, c.Request)
}
