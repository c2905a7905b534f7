// Package metrics defines every Prometheus metric stoker exports. The
// families are created once, registered on a registry the caller passes in
// (no global state), and handed to the worker, which records into them.
//
// Names follow Prometheus conventions: the stoker_ prefix, _total for
// counters, _seconds and _bytes for units. Labels are few and bounded:
// pipeline (from the config), device (cpu or cuda), stage, trigger and
// reason (fixed sets of values).
package metrics
