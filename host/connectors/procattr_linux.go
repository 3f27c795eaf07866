//go:build linux

package connectors

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel SIGKILL the plugin when the host
// dies (the SDK also watches its parent, with a 500 ms poll).
//
// Linux delivers the signal when the OS thread that forked the child exits,
// not the process. The Go runtime only ends a thread when a goroutine that
// called runtime.LockOSThread exits while locked; nothing in this package
// does, so in practice the signal fires when the host process dies.
func setParentDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
