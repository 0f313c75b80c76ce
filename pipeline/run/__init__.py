"""The steps of a build that do the work: renders (shots.py, with the team's leases in
leases.py) and films (films.py). Each takes the plan's values and returns outcomes."""
