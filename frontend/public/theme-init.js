// Runs before the first paint so a light-theme user never sees a dark flash.
try {
  var saved = localStorage.getItem('codesync.theme')
  var light = saved === 'light' || (saved === null && window.matchMedia('(prefers-color-scheme: light)').matches)
  if (light) document.documentElement.classList.remove('dark')
} catch (error) {}
