package controller_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// floodFigures reports what one refused flood cost: the growth of the data
// directory, of the process's RSS, and of the live heap after a GC. The
// controller and the flooding client share the process, so the RSS and
// heap figures are upper bounds for the controller alone.
func floodFigures(b *testing.B, dataDir string, flood func()) {
	b.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0, rss0, dir0 := ms.HeapInuse, readRSS(b), dirBytes(b, dataDir)
	b.ResetTimer()
	for b.Loop() {
		flood()
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	n := float64(b.N)
	b.ReportMetric(float64(dirBytes(b, dataDir)-dir0)/n, "datadir-B/flood")
	b.ReportMetric(float64(readRSS(b)-rss0)/n, "rss-B/flood")
	b.ReportMetric((float64(ms.HeapInuse)-float64(heap0))/n, "heap-B/flood")
}

// BenchmarkRefusedHaltFlood: one op is the viewer's flood of issue 13, 60
// halts with 4 MB reasons, every one refused at the edge.
func BenchmarkRefusedHaltFlood(b *testing.B) {
	srv := controllertest.NewServer(b, nil)
	viewer := srv.ControlClient(b, srv.IssueCert(b, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "mallory"}))
	ctx := b.Context()
	floodFigures(b, srv.Config.DataDir, func() {
		for i := range 60 {
			if _, err := viewer.Halt(ctx, &turbulencev1.HaltRequest{RequestId: "r-" + strconv.Itoa(i), Reason: floodText}); err == nil {
				b.Fatal("a 4 MB halt reason was accepted")
			}
		}
	})
}

// BenchmarkRefusedLabelFlood: one op is the agent's flood of issue 13, 20
// reconnects with 4 MB of labels, every Hello refused at the edge.
func BenchmarkRefusedLabelFlood(b *testing.B) {
	srv := controllertest.NewServer(b, nil)
	hello := &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{
		AgentId: controllertest.AgentName, Labels: map[string]string{"zone": floodText},
	}}}
	client := srv.AgentClient(b)
	floodFigures(b, srv.Config.DataDir, func() {
		for range 20 {
			// Each reconnect is its own stream, ended once refused, so
			// that the client keeps nothing between reconnects.
			ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
			stream, err := client.Connect(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := stream.Send(hello); err != nil {
				b.Fatal(err)
			}
			if _, err := stream.Recv(); err == nil {
				b.Fatal("a Hello with 4 MB of labels was accepted")
			}
			cancel()
		}
	})
}
