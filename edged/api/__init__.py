"""edged's HTTP API: an h11 + Trio server (``http``), a router, and Conductor's REST routes.

Typical wiring::

    app = App(conductor_routes(engine), auth_token=token)
    await nursery.start(serve_http, app, "127.0.0.1", 8080)
"""
