"""Webhooks: endpoints, messages, the delivery log, and the worker that sends them."""
