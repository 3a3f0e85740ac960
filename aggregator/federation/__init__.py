"""Federation: pull clusters queried live, the fleet registry, and the one fleet Queryable."""
