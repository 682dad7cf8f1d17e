package controller_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestController_HealthServingOnceLeader(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	hc := healthpb.NewHealthClient(srv.Dial(t, srv.PKI.Admin))
	for _, svc := range []string{"", "turbulence.v1.ControlService", "turbulence.v1.AgentService"} {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("health %q: %v", svc, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %s, want SERVING", svc, resp.GetStatus())
		}
	}
}

func TestController_StateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(dir, "tls"), "a1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := controller.DefaultConfig()
	cfg.NodeID = "n1"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.GRPCAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLS = pki.Controller
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))

	// Each life runs the controller until fn returns, then stops it.
	life := func(fn func(turbulencev1.ControlServiceClient)) {
		c, err := controller.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := c.WaitLeader(wctx); err != nil {
			t.Fatal(err)
		}
		srv := &controllertest.Server{Controller: c, PKI: tlsutil.DevPKI{Admin: pki.Admin}, Addr: c.GRPCAddr()}
		fn(srv.ControlClient(t, pki.Admin))
	}
	life(func(admin turbulencev1.ControlServiceClient) {
		if _, err := admin.Halt(t.Context(), &turbulencev1.HaltRequest{Reason: "before restart"}); err != nil {
			t.Fatal(err)
		}
	})
	life(func(admin turbulencev1.ControlServiceClient) {
		h, err := admin.GetHaltStatus(t.Context(), &turbulencev1.GetHaltStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// Invariant 5: the halt flag lives in raft and outlives a restart.
		if !h.GetHalted() || h.GetReason() != "before restart" {
			t.Errorf("after restart halt status = %v, want halted", h)
		}
	})
}

func TestController_RejectsIncompleteConfig(t *testing.T) {
	if _, err := controller.New(controller.Config{}); err == nil {
		t.Error("New accepted an empty config")
	}
}
