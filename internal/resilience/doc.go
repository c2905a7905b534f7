// Package resilience holds stoker's failure proofs: tests that run real
// `stoker serve` processes (the binary built from ./cmd/stoker) against real
// NATS servers started inside the test process on loopback, then break
// things and count what arrives.
//
// The package has no code of its own outside tests. Its helpers (in
// harness_test.go) build the binary once per test run, start, signal and
// kill stoker processes, start single, restartable and clustered JetStream
// servers, publish items, tally outputs, duplicates and dead letters, and read
// a process's resident memory from /proc/<pid>/status.
//
// Scenarios (issue 8), each a test. Every test that runs stoker processes
// carries the build tag `resilience` and runs with `make test-resilience`
// (they are too heavy for `go test -race ./...`: the in-process servers slow
// down under the race detector until their timeouts fire); the security
// tests and the fuzz seeds run untagged.
//
//  1. Replicas (TestReplicasShareTheWork): 3 processes share the
//     consumers of the image and text pipelines; 10,000 items; every tensor
//     arrives; throughput with 1, 2 and 3 replicas is logged.
//  2. Crash (TestCrashedReplicaLosesNothing): one of 3 replicas is
//     SIGKILLed while it holds a batch; every item still arrives after
//     AckWait.
//  3. Exactly once (same test, output_mode item): the crash yields no
//     duplicate, since each item's tensor carries Nats-Msg-Id
//     <pipeline>:<stream>:<sequence>:<stored ns>; in batch mode duplicates are counted and
//     reported.
//  4. Broker restart (TestBrokerRestart): the server is stopped and
//     started again on the same port and store, after a brief outage and
//     after one longer than AckWait; every item arrives.
//  5. Cluster (TestClusterNodeLoss): 3 servers with routes, R3
//     streams; one node is stopped mid-run; every item arrives.
//  6. Graceful drain (TestGracefulDrain): SIGTERM under load exits 0 within
//     drain_timeout; fetched-but-unbatched items are handed back at once (a
//     second worker finishes them long before AckWait); nothing is
//     duplicated.
//  7. Backpressure (TestMemoryBoundedUnderBackpressure): 100,000
//     items wait and the output stream only takes what a slow reader frees;
//     the worker's peak resident memory stays under a bound derived from
//     max_inflight_bytes.
//  8. Poison items (TestPoisonItemIsRetriedThenDeadLettered): an item whose
//     tensor the output stream always refuses is retried with NakWithDelay
//     up to max_deliver, then dead-lettered with its delivery count; the
//     other items arrive.
//  9. Hostile input (TestHostileInputs): at least 25 named kinds of bad or
//     strange input in one run of one worker; each is processed or
//     dead-lettered with a reason; the worker survives.
//
// Regression tests for what the scenarios found: an item larger than the
// fetch buffer (TestItemOverFetchBufferDoesNotStallThePipeline), a poison
// item sharing a batch (TestPoisonItemDoesNotTakeItsBatchWithIt), JetStream
// control headers on an item (TestControlHeadersDoNotBlockDeadLetters), and
// replicas racing to create the same streams (TestSimultaneousStartup).
//
// Security tests (security_test.go) connect with each authentication method
// against a server configured for it, check the embedded server's loopback
// rule, that no payload or secret reaches logs or metrics, and that an item
// cannot steer where its output goes. Fuzz targets (fuzz_test.go) cover the
// message identity and subject handling stoker does itself.
//
// Set STOKER_BIN to a prebuilt binary to skip the build.
package resilience
