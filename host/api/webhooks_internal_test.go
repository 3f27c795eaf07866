package api

import (
	"testing"
	"time"
)

func TestHookLimiter(t *testing.T) {
	t.Parallel()
	l := newHookLimiter(50, 100)
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		if ok, _ := l.allow("con_a", t0); !ok {
			t.Fatalf("delivery %d of the burst refused", i)
		}
	}
	ok, wait := l.allow("con_a", t0)
	if ok || wait <= 0 || wait > 20*time.Millisecond {
		t.Fatalf("past the burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.allow("con_b", t0); !ok {
		t.Fatal("another connection shares the bucket")
	}
	// 50 a second refill: 100ms later, 5 more.
	later := t0.Add(100 * time.Millisecond)
	for i := range 5 {
		if ok, _ := l.allow("con_a", later); !ok {
			t.Fatalf("refilled delivery %d refused", i)
		}
	}
	if ok, _ := l.allow("con_a", later); ok {
		t.Fatal("more than the refill allowed")
	}
	// Full buckets are forgotten when the map is full.
	l.sweep(t0.Add(time.Hour))
	if len(l.buckets) != 0 {
		t.Fatalf("%d buckets after a sweep of full ones", len(l.buckets))
	}
}
