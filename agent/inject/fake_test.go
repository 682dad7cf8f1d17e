package inject

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// fakeInjector records what the Manager asks of it. It implements the
// "cpu" kind so that specs pass faultspec validation.
type fakeInjector struct {
	m *Manager // set after NewManager, to look at the Manager from inside Apply

	mu           sync.Mutex
	applies      int
	armedAtApply []bool
	failWith     error
	block        chan struct{} // when set, Apply waits for it to close
	handles      map[string]*fakeHandle
	// undo, when set, makes the injector a guarded kind (as network and
	// partition are) whose handles carry this undo record.
	undo []byte
	// failReverts is the failReverts of every new handle.
	failReverts int
}

func (f *fakeInjector) Kind() string { return faultspec.KindCPU }

func (f *fakeInjector) Apply(ctx context.Context, fault *turbulencev1.Fault, deadline time.Time) (Handle, error) {
	armed := f.m.timerArmed(fault.GetId())
	f.mu.Lock()
	f.applies++
	f.armedAtApply = append(f.armedAtApply, armed)
	block, failWith := f.block, f.failWith
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if failWith != nil {
		return nil, failWith
	}
	f.mu.Lock()
	h := &fakeHandle{done: make(chan struct{}), failReverts: f.failReverts, undo: f.undo}
	if f.handles == nil {
		f.handles = make(map[string]*fakeHandle)
	}
	f.handles[fault.GetId()] = h
	f.mu.Unlock()
	return h, nil
}

// Guarded is true when the fake plays a kind without a worker.
func (f *fakeInjector) Guarded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.undo != nil
}

func (f *fakeInjector) Recover(context.Context, Recorded) error { return nil }

func (f *fakeInjector) Sweep(context.Context, []Recorded) (Swept, error) { return Swept{}, nil }

func (f *fakeInjector) handle(id string) *fakeHandle {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handles[id]
}

func (f *fakeInjector) applyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applies
}

// fakeHandle is an applied fake fault.
type fakeHandle struct {
	mu      sync.Mutex
	reverts int
	// failReverts makes that many reverts fail before one succeeds.
	failReverts int
	done        chan struct{}
	exitErr     error
	once        sync.Once
	undo        []byte
	released    int
}

// Release implements Releaser.
func (h *fakeHandle) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released++
}

// Undo is the injector's undo record, or a worker's as the worker kinds
// write it.
func (h *fakeHandle) Undo() []byte {
	if h.undo != nil {
		return h.undo
	}
	return []byte(`{"worker_pid":4242}`)
}

func (h *fakeHandle) Revert(context.Context) error {
	h.mu.Lock()
	h.reverts++
	fail := h.reverts <= h.failReverts
	h.mu.Unlock()
	if fail {
		return errRevertBoom
	}
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *fakeHandle) Observe(st *turbulencev1.FaultStatus) { st.WorkerPid = 4242 }
func (h *fakeHandle) Done() <-chan struct{}                { return h.done }

func (h *fakeHandle) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exitErr
}

// exit simulates the worker dying by itself.
func (h *fakeHandle) exit(err error) {
	h.mu.Lock()
	h.exitErr = err
	h.mu.Unlock()
	h.once.Do(func() { close(h.done) })
}

func (h *fakeHandle) revertCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reverts
}

// timerArmed reports whether fault id is registered with its revert timer.
func (m *Manager) timerArmed(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.held[id]
	return ok && e.timer != nil
}

func newTestManager() (*Manager, *fakeInjector) {
	inj := &fakeInjector{}
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), inj)
	inj.m = m
	return m, inj
}

func cpuFault(id string, d time.Duration) *turbulencev1.Fault {
	return &turbulencev1.Fault{
		Id: id,
		Spec: &turbulencev1.FaultSpec{
			Duration: durationpb.New(d),
			Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 50}},
		},
		Deadline: timestamppb.New(time.Now().Add(d)),
	}
}

var (
	errBoom       = errors.New("boom")
	errRevertBoom = errors.New("qdisc busy")
)

// failNextReverts makes the next n reverts of handle id fail.
func (f *fakeInjector) failNextReverts(id string, n int) {
	h := f.handle(id)
	h.mu.Lock()
	h.failReverts = h.reverts + n
	h.mu.Unlock()
}
