"""What runs inside Ray actors, one module per data product.

Kept free of Prefect (and of the flow modules that import it): an actor unpickles its
worker by module path, and importing Prefect there cost every actor ~1.2 s at start-up.
"""
