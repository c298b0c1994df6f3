"""Benchmark harness for the service this template generates: `python -m bench --help`.

Kept free of imports so that `uvicorn --factory bench.hello_app:create_app` loads only
FastAPI, which is what the framework floor is meant to measure.
"""
