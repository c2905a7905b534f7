# Failure proofs (issue 8): real `stoker serve` processes against NATS
# servers started inside the test process. Included from the top Makefile.
#
#   make test-resilience   every scenario, the slow ones included (build tag
#                          `resilience`); about 3 minutes on 2 cores
#   make fuzz-resilience   the message-envelope fuzz targets, FUZZTIME each
#
# The scenarios' counts and figures are printed by the tests (-v) as lines
# starting "scenario".

RESILIENCE_TIMEOUT ?= 15m

.PHONY: test-resilience fuzz-resilience

test-resilience:
	$(GO) test -tags resilience -count=1 -timeout $(RESILIENCE_TIMEOUT) -v ./internal/resilience/

fuzz-resilience:
	$(GO) test -run '^$$' -fuzz '^FuzzItemHeaders$$' -fuzztime $(FUZZTIME) ./internal/resilience/
	$(GO) test -run '^$$' -fuzz '^FuzzSubjectRules$$' -fuzztime $(FUZZTIME) ./internal/resilience/
