"""PromQL: parse with promql-parser, evaluate whole expressions over any Queryable."""
