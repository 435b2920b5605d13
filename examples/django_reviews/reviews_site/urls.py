from django.urls import path
from reviews import views

urlpatterns = [
    path("", views.review, name="review"),
    path("aiweb/events/", views.aiweb_events, name="aiweb-events"),
]
