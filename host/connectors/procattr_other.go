//go:build !linux

package connectors

import "os/exec"

// setParentDeathSignal does nothing off Linux: plugins there rely on the
// SDK's parent watch to exit with the host.
func setParentDeathSignal(*exec.Cmd) {}
