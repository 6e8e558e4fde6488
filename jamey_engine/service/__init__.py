"""The Jamey HTTP service: ``create_app(engine)`` builds the FastAPI app that ``jamey serve`` runs."""

from jamey_engine.service.app import create_app

__all__ = ["create_app"]
