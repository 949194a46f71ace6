"""The test project's URLs and the cross-origin views (tests/test_browser_cors.py)."""

from django.urls import path

from . import views_cors
from .urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("cors/page/", views_cors.origin_page),
    path("cors/sign/", views_cors.sign_view),
    path("cors/members/<str:names>/", views_cors.MembersStream.as_view()),
    path("cors/token/<str:names>/", views_cors.TokenStream.as_view()),
    *project_urlpatterns,
]
