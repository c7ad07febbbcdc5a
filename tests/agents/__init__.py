"""Tests of the device agent (agents/)."""
