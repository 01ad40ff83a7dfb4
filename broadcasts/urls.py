from django.urls import path

from broadcasts import views

app_name = "broadcasts"
urlpatterns = [
    path("l/<str:token>", views.tracked_link, name="link"),
    path("archive/", views.archive, name="archive"),
    path("archive/feed.rss", views.ArchiveFeed(), name="feed"),
]
