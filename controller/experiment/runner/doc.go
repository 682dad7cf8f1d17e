// Package runner runs experiments on the controller's leader: the checks
// before the start (error budget, steady state), the choice of each
// target (once), the timeline of fault groups, the probes sampled all the
// way through, the abort when a watched probe fails, and the verdict
// after the recovery time. docs/experiments-runner.md describes it for
// operators.
//
// # Where things live
//
// The experiment record is in raft (controller/state): its state, its
// chosen targets, its steps with their fault groups, its events and its
// probe samples. The runner keeps the samples and events of the last
// second in memory and proposes them in one UpdateExperiment entry per
// FlushInterval, and at every change of phase; so a report read from any
// controller lags the run by at most that, and one entry per second per
// running experiment is what the log pays. The abort path proposes the
// group reverts first and the record after.
//
// # Leader only, and the failover rule
//
// Run is the leader's loop (controller.go starts it with the agent hub's
// when this node leads and has passed its barrier, and cancels it when
// leadership is lost). A runner that loses leadership stops at once and
// writes nothing more; it could not commit anything anyway.
//
// The rule for a new leader is ABORT: at the start of its term, every
// experiment still PENDING or RUNNING in the state is aborted — each
// group its steps may have applied is reverted and the experiment ends
// ABORTED "leader changed: probe history incomplete". Continuing would
// mean trusting a history with a hole in it: the samples the old leader
// took but had not flushed are lost, the abort condition was not watched
// during the election, and the old leader may have been cut off while a
// probe was failing. A verdict from such a run would claim more than the
// controller knows (invariant 8). Each step's group is applied with a
// request ID derived from the experiment ID and the step's name, so the
// new leader finds a group the old one committed even when the step's
// record of it never made it to the log.
//
// # Concurrency
//
// Each experiment has one goroutine that owns its run (run.loop) and one
// goroutine per probe that samples it and sends the sample to the loop.
// Runner's mutex guards only its map of runs and the leader term's
// context. Run returns after every goroutine it started has ended.
package runner
