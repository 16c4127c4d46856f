# Pasted by mistake.
Vagrant.configure("2") do |config|
  config.vm.box = "debian/bookworm64"
end
