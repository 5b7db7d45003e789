package collector

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestHoldPLeavesOneFree checks the raw-sleep policy: readers sleeping
// at once keep their Ps only while one P stays free for the rest of the
// process, so on one CPU no reader holds the only P.
func TestHoldPLeavesOneFree(t *testing.T) {
	for _, c := range []struct {
		procs int
		want  int // how many of 4 simultaneous sleepers may hold their P
	}{{1, 0}, {2, 1}, {4, 3}, {8, 4}} {
		held := 0
		for i := 1; i <= 4; i++ {
			if holdP(i, c.procs) {
				held++
			}
		}
		if held != c.want {
			t.Errorf("GOMAXPROCS %d: %d of 4 sleeping readers keep their P, want %d", c.procs, held, c.want)
		}
	}
}

// TestPollSleepOneCPU runs a reader's sleeps under GOMAXPROCS 1 beside a
// goroutine that counts how often it gets the only P (yielding after each
// count): while the sleeps hold the P it runs only in the moments between
// them, about once per sleep; with the P free, thousands of times.
func TestPollSleepOneCPU(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var stop atomic.Bool
	ran := make(chan int, 1)
	go func() {
		n := 0
		for !stop.Load() {
			n++
			runtime.Gosched()
		}
		ran <- n
	}()
	const sleeps = 20
	for i := 0; i < sleeps; i++ {
		pollSleep(5 * time.Millisecond)
	}
	stop.Store(true)
	if n := <-ran; n < 100*sleeps {
		t.Errorf("a runnable goroutine ran %d times during %d sleeps of a reader on one P: the sleeps held the P", n, sleeps)
	}
}
