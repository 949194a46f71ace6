from django.urls import path

from example_project.demo import views

urlpatterns = [
    path("", views.index, name="index"),
    path("events/clock/", views.ClockStream.as_view(), name="clock"),
    path("events/job/", views.JobStream.as_view(), name="job"),
    path("chat/", views.chat, name="chat"),
    path("events/chat/", views.ChatStream.as_view(), name="chat-events"),
]
