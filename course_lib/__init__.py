"""course_lib: the library behind the course."""
