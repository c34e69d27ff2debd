"""The operator runtime: informers, the work queue, reconcilers, leader election and custom resources."""
