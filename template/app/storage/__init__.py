"""File storage: the `Storage` interface and the adapter this service was generated with.

Build it with `app.storage.factory.create_storage(settings)`.
"""
