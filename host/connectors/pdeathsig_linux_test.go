//go:build linux

package connectors

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER of prctl(2).
const prSetChildSubreaper = 36

// TestPluginDiesWithHost: a host launches a plugin and dies without stopping
// it. The kernel must SIGKILL the plugin at once (Pdeathsig). This test
// process is made a child subreaper, so the orphaned plugin becomes its
// child and its exit status can be read: a plugin that merely noticed its
// parent was gone (the SDK's watch) would exit with status 0 instead.
//
// Not parallel: it changes a process-wide attribute (harmless to the other
// tests, whose plugins are direct children anyway).
func TestPluginDiesWithHost(t *testing.T) {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), hostModeEnv+"="+sampleBins["0.1.0"])
	host.Stderr = os.Stderr
	out, err := host.Output() // returns once the host has exited and been reaped
	if err != nil {
		t.Fatalf("host: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 0 {
		t.Fatalf("host printed %q", out)
	}

	var ws syscall.WaitStatus
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			t.Fatalf("wait4(%d): %v (the orphaned plugin was not reparented to the test)", pid, err)
		}
		if got == pid {
			break
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("plugin %d still running 15s after its host died", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("orphaned plugin ended with %v (exit status %d), want SIGKILL from Pdeathsig", ws, ws.ExitStatus())
	}
}
