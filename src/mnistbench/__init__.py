"""mnistbench: train, measure and compare neural-network families on MNIST and Fashion-MNIST."""

__version__ = "0.1.0"
