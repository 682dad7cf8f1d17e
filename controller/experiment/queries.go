package experiment

import (
	"context"
	"fmt"
)

// QueryChecker asks the Prometheus server at url whether query parses
// into something a probe can read. controller/experiment/probe's
// CheckQuery is the real one; it is passed in rather than imported
// because that package builds on this one.
type QueryChecker func(ctx context.Context, url, query string) error

// CheckQueries asks check about every PromQL query of the file — each
// Prometheus probe's and the error budget's — and returns an *Error
// naming each query the server refuses, or nil. Each query is asked once
// even when several fields repeat it. The spec must be valid.
func (s *Spec) CheckQueries(ctx context.Context, check QueryChecker) error {
	var c collector
	type asked struct{ url, query string }
	seen := map[asked]error{}
	ask := func(field, url, query string) {
		k := asked{url, query}
		err, ok := seen[k]
		if !ok {
			err = check(ctx, url, query)
			seen[k] = err
		}
		if err != nil {
			c.addf(field, "%s", oneLine(err.Error()))
		}
	}
	for i, p := range s.Probes {
		if p.Prometheus != nil {
			ask(fmt.Sprintf("probes[%d].prometheus.query", i), p.Prometheus.URL, p.Prometheus.Query)
		}
	}
	if b := s.ErrorBudget; b != nil {
		ask("error_budget.query", b.URL, b.Query)
		if b.BurnRateQuery != "" {
			ask("error_budget.burn_rate_query", b.URL, b.BurnRateQuery)
		}
	}
	return c.err()
}
