"""The decision side: planners propose each next iteration's parameters."""
