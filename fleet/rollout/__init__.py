"""Rollout programmes: prison plans, milestones, measured progress and daily history."""
